import Foundation
import Logging
import XNProtocol
import XNStore

/// A connected worker as the scheduler sees it.
struct RemoteWorker {
    let session: UInt64
    var name: String
    var labels: [String: String]
    var slots: Int
    var version: String
    var connectedAt: Int64
    var lastSeen: Int64
    var draining = false
    var attempts: Set<UInt64> = []
    /// Messages for this worker; the session's writer sends them in order.
    let outbox: AsyncStream<WireMessage>.Continuation

    var freeSlots: Int { draining ? 0 : max(0, slots - attempts.count) }
}

/// One attempt of a job on a worker. It outlives a dropped connection until `deadline`.
struct RemoteAttempt {
    let job: JobID
    let token: UInt64
    var worker: String
    var session: UInt64?
    /// Bytes of each stream stored so far: where the worker resumes after a reconnect.
    var stored: [OutputStreamName: Int]
    /// Bytes kept per stream of this job (`max_output` within the hub's cap).
    let outputCap: Int
    var stopReason: Scheduler.StopReason?
    /// When a disconnected attempt is declared lost (milliseconds since the epoch).
    var deadline: Int64?
}

/// What the hub answers a worker's hello.
enum HelloAnswer: Sendable {
    case welcome(session: UInt64)
    case refused(String)
}

/// Where a frame of output goes, or why it must be refused.
enum OutputTarget: Sendable {
    case store(JobID, storedOffset: Int, cap: Int)
    case stale
}

extension Scheduler {
    // MARK: - Sessions

    /// Registers a worker's connection; a worker of the same name connected elsewhere is replaced.
    func connect(_ hello: WireMessage, outbox: AsyncStream<WireMessage>.Continuation) -> HelloAnswer {
        guard let name = hello.name, !name.isEmpty, name.count <= 200 else { return .refused("hello needs a name") }
        let slots = hello.slots ?? 1
        guard (0...1024).contains(slots) else { return .refused("slots must be from 0 to 1024") }
        for (session, worker) in workers where worker.name == name {
            worker.outbox.finish()
            detach(session, reason: "replaced by a new connection of the same worker", expired: false)
        }
        nextSession += 1
        let session = nextSession
        var worker = RemoteWorker(
            session: session, name: name, labels: hello.labels ?? [:], slots: slots, version: hello.version ?? "?",
            connectedAt: Timestamp.now(), lastSeen: Timestamp.now(), outbox: outbox)
        var follow: [WireMessage] = []
        for report in hello.attempts ?? [] {
            guard let token = AttemptToken.parse(report.attempt), var attempt = remote[token],
                attempt.job.rawValue == report.job
            else {
                // An attempt the hub moved past: the worker must not run or report it.
                follow.append(
                    report.end == nil
                        ? Self.kill(report.attempt, "the hub no longer runs this attempt") : Self.forget(report.attempt)
                )
                continue
            }
            attempt.session = session
            attempt.deadline = nil
            attempt.worker = name
            remote[token] = attempt
            worker.attempts.insert(token)
            var ack = WireMessage(.ack)
            ack.attempt = report.attempt
            ack.stdout = attempt.stored[.stdout] ?? 0
            ack.stderr = attempt.stored[.stderr] ?? 0
            follow.append(ack)
            if attempt.stopReason == .canceled {
                var cancel = WireMessage(.cancel)
                cancel.attempt = report.attempt
                follow.append(cancel)
            }
        }
        workers[session] = worker
        // Welcome goes first, before any assignment a dispatch may queue from now on.
        var welcome = WireMessage(.welcome)
        welcome.heartbeat = Double(configuration.heartbeatInterval.milliseconds) / 1000
        outbox.yield(welcome)
        follow.forEach { outbox.yield($0) }
        logger.info("worker \(name) connected: \(slots) slot(s), labels \(worker.labels)")
        return .welcome(session: session)
    }

    /// A session ended or went silent: its attempts wait for the worker to come back until the
    /// heartbeat timeout (at once when `expired`), then are lost or retried.
    func disconnected(_ session: UInt64, reason: String, expired: Bool) async {
        detach(session, reason: reason, expired: expired)
        await reapOrphans()
        await dispatch()
    }

    private func detach(_ session: UInt64, reason: String, expired: Bool) {
        guard let worker = workers.removeValue(forKey: session) else { return }
        logger.info("worker \(worker.name) disconnected: \(reason)")
        let deadline = Timestamp.now() + (expired ? 0 : Int64(configuration.heartbeatTimeout.milliseconds))
        for token in worker.attempts {
            remote[token]?.session = nil
            remote[token]?.deadline = deadline
        }
    }

    func seen(_ session: UInt64) {
        workers[session]?.lastSeen = Timestamp.now()
    }

    func draining(_ session: UInt64) {
        workers[session]?.draining = true
        if let name = workers[session]?.name { logger.info("worker \(name) is draining") }
    }

    /// Connected workers, for `GET /v1/workers`.
    func workerList() -> [RemoteWorker] {
        workers.values.sorted { $0.name < $1.name }
    }

    // MARK: - Placement

    func pickWorker(for spec: JobSpec) -> UInt64? {
        workers.values
            .filter { $0.freeSlots > 0 && spec.runs(on: $0.labels) }
            .min { $0.attempts.count * 1000 / max(1, $0.slots) < $1.attempts.count * 1000 / max(1, $1.slots) }?
            .session
    }

    func assign(_ job: JobRecord, to session: UInt64) async throws -> Bool {
        guard let worker = workers[session] else { return false }
        let token = AttemptToken.random()
        guard try await store.claim(job.id, worker: worker.name, token: token, state: .assigned, at: Timestamp.now())
        else { return false }
        queuedCount = max(0, queuedCount - 1)
        remote[token] = RemoteAttempt(
            job: job.id, token: token, worker: worker.name, session: session, stored: [:],
            outputCap: configuration.outputCap(of: job.spec), deadline: nil)
        guard workers[session] != nil else {
            // The worker left while the claim was stored: the attempt waits for it like any other.
            remote[token]?.session = nil
            remote[token]?.deadline = Timestamp.now() + Int64(configuration.heartbeatTimeout.milliseconds)
            return true
        }
        workers[session]?.attempts.insert(token)
        var message = WireMessage(.assign)
        message.attempt = AttemptToken.format(token)
        message.job = job.id.rawValue
        message.spec = job.spec
        message.stdout = configuration.outputCap(of: job.spec)
        worker.outbox.yield(message)
        flushPendingInput(job.id, token: token, to: worker.outbox)
        return true
    }

    /// Why a queued job waits, for `xn show`.
    func waitingReason(_ spec: JobSpec) -> String {
        if spec.labels.isEmpty && configuration.slots > 0 { return "waiting for a free slot" }
        let matching = workers.values.filter { spec.runs(on: $0.labels) && !$0.draining }
        if matching.isEmpty {
            if spec.labels.isEmpty { return "waiting for a worker (this hub runs no jobs itself)" }
            let wanted = spec.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            return "waiting for a worker with \(wanted)"
        }
        return "waiting for a free slot on \(matching.map(\.name).sorted().joined(separator: ", "))"
    }

    // MARK: - Reports from workers

    func started(_ token: UInt64, session: UInt64) async -> Bool {
        guard let attempt = remote[token], attempt.session == session else { return false }
        _ = try? await store.markStarted(attempt.job, token: token)
        return true
    }

    func outputTarget(_ token: UInt64, stream: OutputStreamName, session: UInt64) -> OutputTarget {
        guard let attempt = remote[token], attempt.session == session else { return .stale }
        return .store(attempt.job, storedOffset: attempt.stored[stream] ?? 0, cap: attempt.outputCap)
    }

    /// Bytes were stored: remember where the stream ends and acknowledge them.
    func outputStored(_ token: UInt64, stream: OutputStreamName, upTo offset: Int) {
        guard var attempt = remote[token] else { return }
        attempt.stored[stream] = max(attempt.stored[stream] ?? 0, offset)
        remote[token] = attempt
        guard let session = attempt.session, let worker = workers[session] else { return }
        var ack = WireMessage(.ack)
        ack.attempt = AttemptToken.format(token)
        ack.stdout = attempt.stored[.stdout] ?? 0
        ack.stderr = attempt.stored[.stderr] ?? 0
        worker.outbox.yield(ack)
    }

    /// A worker's attempt ended: record it (if it is still the job's current attempt). Returns a
    /// problem that ends the connection when the end comes before the output it reports.
    func remoteEnded(_ token: UInt64, _ end: AttemptEnd, session: UInt64) async -> String? {
        guard let attempt = remote[token], attempt.session == session else {
            workers[session]?.outbox.yield(Self.forget(AttemptToken.format(token)))
            return nil
        }
        let cap = attempt.outputCap
        for (stream, written) in [(OutputStreamName.stdout, end.stdoutBytes), (.stderr, end.stderrBytes)]
        where attempt.stored[stream] ?? 0 < min(written, cap) {
            return
                "attempt \(AttemptToken.format(token)) ended with \(stream.rawValue) at \(attempt.stored[stream] ?? 0) of "
                + "\(min(written, cap)) bytes"
        }
        let outcome = Self.outcome(of: end, reason: attempt.stopReason, cap: cap)
        let ended = try? await store.finish(attempt.job, outcome, token: token)
        release(token)
        workers[session]?.outbox.yield(Self.forget(AttemptToken.format(token)))
        if let ended { jobEnded(ended) }
        await dispatch()
        return nil
    }

    static func outcome(of end: AttemptEnd, reason: StopReason?, cap: Int) -> JobOutcome {
        let now = Timestamp.now()
        var outcome: JobOutcome
        if reason == .canceled || end.canceled {
            outcome = JobOutcome(state: .canceled, err: "canceled", finishedAt: now)
        } else if end.timedOut {
            outcome = JobOutcome(state: .timedOut, err: end.err ?? "timed out", finishedAt: now)
        } else if let code = end.exitCode {
            outcome = JobOutcome(state: code == 0 ? .succeeded : .failed, exitCode: code, finishedAt: now)
        } else if let signal = end.signal {
            outcome = JobOutcome(state: .failed, signal: signal, err: SignalName.death(signal), finishedAt: now)
        } else {
            outcome = JobOutcome(state: .failed, err: end.err ?? "the worker could not run the job", finishedAt: now)
        }
        outcome.exitCode = end.exitCode
        outcome.signal = end.signal
        outcome.stdoutTruncated = end.stdoutTruncated || end.stdoutBytes > cap
        outcome.stderrTruncated = end.stderrTruncated || end.stderrBytes > cap
        return outcome
    }

    // MARK: - Cancel, loss, restart

    func remoteToken(of id: JobID) -> UInt64? {
        remote.first { $0.value.job == id }?.key
    }

    func cancelRemote(_ id: JobID, token: UInt64) async throws -> JobRecord? {
        remote[token]?.stopReason = .canceled
        if let session = remote[token]?.session, let worker = workers[session] {
            var cancel = WireMessage(.cancel)
            cancel.attempt = AttemptToken.format(token)
            worker.outbox.yield(cancel)
            return try await job(id, waitingUpTo: configuration.killGrace + .seconds(3))
        }
        // Its worker is away: the cancel is final now; if the worker comes back it is told to kill.
        let outcome = JobOutcome(
            state: .canceled, err: "canceled while its worker was disconnected", finishedAt: Timestamp.now())
        let ended = try await store.finish(id, outcome, token: token)
        release(token)
        if let ended { jobEnded(ended) }
        return try await store.job(id)
    }

    /// Attempts whose worker did not come back in time: lost, or queued again while retries last.
    func reapOrphans() async {
        let now = Timestamp.now()
        let expired = remote.values.filter { $0.session == nil && ($0.deadline ?? .max) <= now }
        for attempt in expired {
            release(attempt.token)
            let reason = "worker \(attempt.worker) lost (no heartbeat within \(configuration.heartbeatTimeout))"
            do {
                guard let job = try await store.job(attempt.job), job.attemptToken == attempt.token else { continue }
                if job.attempts <= job.spec.retries {
                    if try await store.requeue(
                        attempt.job, token: attempt.token, reason: "attempt \(job.attempts): \(reason)")
                    {
                        queuedCount += 1
                        logger.info("job \(attempt.job) queued again after \(reason)")
                    }
                } else if let ended = try await store.finish(
                    attempt.job, JobOutcome(state: .lost, err: reason, finishedAt: now), token: attempt.token)
                {
                    jobEnded(ended)
                }
            } catch {
                logger.error("cannot resolve lost attempt of job \(attempt.job): \(error)")
            }
        }
        if !expired.isEmpty { await dispatch() }
    }

    func reapOrphansUntilCancelled() async {
        while accepting {
            try? await Task.sleep(for: .milliseconds(200))
            await reapOrphans()
        }
    }

    /// After a restart, jobs on workers wait for their worker to come back before they are lost.
    func adoptRemoteAttempts() async throws {
        let deadline = Timestamp.now() + Int64(configuration.heartbeatTimeout.milliseconds) * 2
        for job in try await store.remoteAttempts() {
            guard let token = job.attemptToken, let worker = job.worker else { continue }
            remote[token] = RemoteAttempt(
                job: job.id, token: token, worker: worker, session: nil,
                stored: [.stdout: job.stdoutBytes, .stderr: job.stderrBytes],
                outputCap: configuration.outputCap(of: job.spec), deadline: deadline)
        }
    }

    private func release(_ token: UInt64) {
        guard let attempt = remote.removeValue(forKey: token) else { return }
        if let session = attempt.session { workers[session]?.attempts.remove(token) }
    }

    static func kill(_ attempt: String, _ reason: String) -> WireMessage {
        var message = WireMessage(.kill)
        message.attempt = attempt
        message.reason = reason
        return message
    }

    static func forget(_ attempt: String) -> WireMessage {
        var message = WireMessage(.ack)
        message.attempt = attempt
        message.ended = true
        return message
    }
}

extension Duration {
    var milliseconds: Int {
        Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}
