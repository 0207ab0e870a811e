import Foundation
import Logging
import ServiceLifecycle
import XNProtocol
import XNStore

/// Runs the hub's `SchedulerMachine`: feeds it events (submissions, cancels, what workers report,
/// time passing) and carries out the actions it returns (store writes, messages to workers,
/// announcing ends). Every job runs on a worker; the hub's own slots are an in-process worker
/// that speaks the same messages over an in-memory link.
///
///     routes ─┐                                  ┌─▶ store
///     workers ┼─▶ event ─▶ SchedulerMachine ─▶ actions ─┼─▶ worker links (WebSocket or in-process)
///     clock ──┘                                  └─▶ waiters, attach sessions, callbacks
///
/// - Important: Run it as a service (`run()`): it starts the in-process worker after recovery,
///   and on a graceful shutdown drains it before it returns.
public actor Scheduler: Service {
    let store: any JobStore
    let configuration: HubConfiguration
    let logger: Logger
    let localWorker: (any InProcessWorker)?
    var machine: SchedulerMachine
    let endSignals = EndSignals()
    /// Wakes attach sessions on new output and on the end.
    nonisolated let activity = JobActivity()
    /// Every stored state change, for live job lists (the web page).
    nonisolated let feed = JobFeed()
    /// Counts what happens to jobs, for `GET /metrics`.
    nonisolated let metrics: HubMetrics
    /// Ended jobs with a callback, delivered by `run()` off the path that recorded the end: a
    /// slow or unreachable callback must hold up neither a slot nor a worker's link.
    private let endedWithCallback: AsyncStream<JobRecord>
    private let callbackQueue: AsyncStream<JobRecord>.Continuation
    /// Finished by `recover()`: nothing runs before what a previous hub left is resolved.
    private let recovered: AsyncStream<Void>
    private let recoveredSignal: AsyncStream<Void>.Continuation
    /// Where messages for each worker session go.
    var outboxes: [SessionID: any WorkerOutbox] = [:]
    /// What each link's token lets its worker announce.
    var grants: [SessionID: WorkerGrant] = [:]
    var nextSessionID: SessionID = 0
    var finishedCount = 0

    public init(
        store: any JobStore, configuration: HubConfiguration, localWorker: (any InProcessWorker)?, logger: Logger
    ) {
        self.store = store
        metrics = HubMetrics()
        self.configuration = configuration
        self.localWorker = localWorker
        self.logger = logger
        var settings = SchedulerMachine.Settings()
        settings.heartbeatTimeout = Int64(configuration.heartbeatTimeout.milliseconds)
        settings.heartbeatTimeoutText = "\(configuration.heartbeatTimeout)"
        settings.maxQueued = configuration.maxQueued
        settings.maxOutputBytes = configuration.maxOutputBytes
        machine = SchedulerMachine(settings: settings)
        (endedWithCallback, callbackQueue) = AsyncStream.makeStream(of: JobRecord.self)
        (recovered, recoveredSignal) = AsyncStream.makeStream(of: Void.self)
    }

    /// Resolves what a previous hub process left assigned or running; must finish before the
    /// server accepts jobs.
    public func recover() async throws {
        let active = try await store.activeJobs()
        let counts = try await store.queueCounts()
        finishedCount = try await store.count(state: nil) - counts.total - active.count
        machine.now = Timestamp.now()
        await perform(machine.recover(active: active, queued: counts))
        if !active.isEmpty { logger.notice("resolving \(active.count) job(s) a previous hub left assigned or running") }
        recoveredSignal.finish()
    }

    public func run() async throws {
        for await _ in recovered {}
        guard !Task.isCancelled else { return }
        let callbacks = CallbackSender(configuration: configuration, store: store, metrics: metrics, logger: logger)
        // Deliveries a previous hub left pending resume where they were.
        do {
            let pending = try await store.pendingCallbacks()
            if !pending.isEmpty { logger.notice("resuming the callback delivery of \(pending.count) job(s)") }
            for job in pending { callbackQueue.yield(job) }
        } catch {
            logger.error("cannot read pending callbacks: \(error)")
        }
        await withDiscardingTaskGroup { outer in
            outer.addTask {
                await withDiscardingTaskGroup { deliveries in
                    for await job in self.endedWithCallback {
                        deliveries.addTask { await callbacks.deliver(job) }
                    }
                }
            }
            await withTaskGroup(of: Void.self) { group in
                if let localWorker {
                    let link = InProcessLink()
                    let session = openSession(InProcessOutbox(link: link))
                    group.addTask {
                        await localWorker.serve(hub: InProcessHost(scheduler: self, session: session), link: link)
                        await self.sessionClosed(session, expired: false)
                    }
                }
                group.addTask { await self.tickUntilCancelled() }
                try? await gracefulShutdown()
                await self.shutdown()
                group.cancelAll()
            }
            // Every end is stored: deliver what is queued, then stop.
            callbackQueue.finish()
        }
    }

    /// Graceful shutdown: nothing new starts; the hub's own slots give running jobs the grace
    /// period, then kill them and record how they ended. Jobs on workers go on.
    private func shutdown() async {
        machine.shutdown()
        if let localWorker {
            logger.info("draining the hub's own slots (up to \(configuration.shutdownGrace))")
            await localWorker.drain()
        }
        for outbox in outboxes.values where outbox is InProcessOutbox { outbox.close(reason: "the hub shut down") }
    }

    private func tickUntilCancelled() async {
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: .milliseconds(200))) != nil else { return }
            await event { $0.tick() }
        }
    }

    /// Feeds the machine one event at the current time and carries out what it returns.
    func event(_ change: (inout SchedulerMachine) -> [SchedulerAction]) async {
        machine.now = Timestamp.now()
        await perform(change(&machine))
    }

    // MARK: - Jobs

    /// Stores a new job. With a slot free and nothing queued before it, it is stored already
    /// placed (one write instead of insert, then claim) and sent to its worker.
    /// `owner` names the submitting token; with `ownerCap`, that token may have at most so many
    /// jobs queued (checked and reserved in one step, so concurrent submissions cannot pass it).
    public func submit(
        _ spec: JobSpec, id: JobID = .random(), owner: String? = nil, ownerCap: Int? = nil
    ) async throws -> JobRecord {
        await purgeBeyondLimit()
        machine.now = Timestamp.now()
        var job = JobRecord(id: id, spec: spec, createdAt: machine.now)
        job.owner = owner
        let submission = SchedulerMachine.Submission(
            job: QueuedJob(job), ownerCap: ownerCap, outputCap: configuration.outputCap(of: spec),
            retries: spec.retries)
        switch machine.submit(submission) {
        case .refuse(let full):
            throw full
        case .queue:
            let stored: JobRecord
            do {
                stored = try await store.insert(job)
            } catch {
                await event { $0.queuedNotStored(owner: owner) }
                throw error
            }
            await event { $0.queuedStored(QueuedJob(stored)) }
            metrics.jobSubmitted()
            feed.publish(stored)
            return stored
        case .start(let token, let worker, let state):
            job.state = state
            job.startedAt = job.createdAt
            job.worker = worker
            job.attempts = 1
            job.attemptToken = token
            let stored: JobRecord
            do {
                stored = try await store.insert(job)
            } catch {
                await event { $0.startNotStored(token) }
                throw error
            }
            await event { $0.startStored(token, stored) }
            metrics.jobSubmitted()
            feed.publish(stored)
            return stored
        }
    }

    /// Submits a job and returns it once it ended, or as it is after `timeout`.
    public nonisolated func submitAndWait(
        _ spec: JobSpec, owner: String? = nil, ownerCap: Int? = nil, timeout: Duration,
        submitted: @Sendable (JobRecord) -> Void = { _ in }
    ) async throws -> JobRecord {
        let id = JobID.random()
        let ticket = endSignals.register(id)
        let job: JobRecord
        do {
            job = try await submit(spec, id: id, owner: owner, ownerCap: ownerCap)
        } catch {
            endSignals.cancel(id, ticket: ticket)
            throw error
        }
        submitted(job)
        if let ended = await endSignals.wait(id, ticket: ticket, timeout: timeout) { return ended }
        return try await store.job(id) ?? job
    }

    /// The job, after waiting up to `timeout` for it to end; nil if there is no such job.
    public nonisolated func job(_ id: JobID, waitingUpTo timeout: Duration) async throws -> JobRecord? {
        let ticket = endSignals.register(id)
        let current: JobRecord?
        do {
            current = try await store.job(id)
        } catch {
            endSignals.cancel(id, ticket: ticket)
            throw error
        }
        guard let current, !current.state.isTerminal else {
            endSignals.cancel(id, ticket: ticket)
            return current
        }
        if let ended = await endSignals.wait(id, ticket: ticket, timeout: timeout) { return ended }
        return try await store.job(id)
    }

    /// Cancels a queued or running job and returns it once its end is stored (or as it is when
    /// its runner takes longer than the kill grace); nil if it does not exist.
    public func cancel(_ id: JobID) async throws -> JobRecord? {
        machine.now = Timestamp.now()
        var decision = machine.cancel(id)
        if decision == .unknown {
            guard let record = try await store.job(id) else { return nil }
            guard record.state == .queued else { return record }
            machine.now = Timestamp.now()
            decision = machine.cancelQueued(QueuedJob(record))
        }
        switch decision {
        case .unknown:
            return try await store.job(id)
        case .waitForEnd(let actions):
            await perform(actions)
            return try await job(id, waitingUpTo: configuration.killGrace + .seconds(5))
        case .storeCancel(let id, let outcome):
            let ended: JobRecord?
            do {
                ended = try await store.finish(id, outcome)
            } catch {
                logger.error("cannot store the cancel of job \(id): \(error)")
                await event { $0.queuedCancelFailed(id) }
                throw error
            }
            await event { $0.queuedCancelStored(id, ended) }
            if let ended { return ended }
            return try await store.job(id)
        }
    }

    /// What became of a signal for a job.
    enum SignalDelivery: Sendable {
        case sent
        /// Queued or assigned, or its worker is away: nothing to signal (yet).
        case notRunning(String)
        case notFound
    }

    /// Sends `signal` to a running job's process group, wherever it runs.
    func signal(_ id: JobID, _ signal: Int32) async throws -> SignalDelivery {
        switch machine.signal(id, signal) {
        case .send(let session, let message):
            outboxes[session]?.send(message)
            return .sent
        case .notRunning(let reason):
            return .notRunning(reason)
        case .unknown:
            guard let job = try await store.job(id) else { return .notFound }
            return .notRunning(job.state.isTerminal ? "already ended" : "it has not started")
        }
    }

    /// Passes input to a job; returns why it could not. Input for a job that keeps its stdin open
    /// but has not started yet waits for it (typing ahead).
    func input(_ id: JobID, _ action: InputAction) async -> String? {
        var decision = machine.input(id, action)
        if decision == .unknown {
            let job: JobRecord?
            do {
                job = try await store.job(id)
            } catch {
                return "cannot read the job: \(error)"
            }
            guard let job, job.state == .queued, job.spec.keepsInputOpen else { return "the job is not running" }
            decision = machine.holdInput(id, action)
        }
        switch decision {
        case .send(let session, let message):
            outboxes[session]?.send(message)
            return nil
        case .held:
            return nil
        case .refused(let reason):
            return reason
        case .unknown:
            return "the job is not running"
        }
    }

    /// Connected workers, for `GET /v1/workers`.
    func workerList() -> [WorkerView] {
        machine.workerList().map { worker in
            WorkerView(
                name: worker.name, labels: worker.labels, slots: worker.slots, running: worker.attempts.count,
                connectedAt: worker.connectedAt, lastHeartbeat: worker.lastSeen, version: worker.version,
                draining: worker.draining)
        }
    }

    /// What `GET /metrics` reports of the queue, the attempts and the workers.
    func metricsSnapshot() -> HubMetrics.Snapshot {
        HubMetrics.Snapshot(
            queued: machine.queued.total, running: machine.attempts.count,
            workers: machine.workers.values.sorted { $0.name < $1.name }.map {
                .init(name: $0.name, slots: $0.slots, busy: $0.attempts.count)
            })
    }

    /// Why the hub should not be sent work now (`GET /readyz`): still recovering, or shutting down.
    func notReadyReason() -> String? {
        switch machine.phase {
        case .recovering: "starting"
        case .running: nil
        case .draining: "shutting down"
        }
    }

    /// Why a queued job waits, for `xn show`.
    func waitingReason(_ spec: JobSpec) -> String {
        machine.waitingReason(labels: spec.labels)
    }

    // MARK: - Ends

    /// Every end goes through here once it is stored: waiters, attach sessions, the `-n` count,
    /// and the callback, if any.
    func announce(_ job: JobRecord) {
        endSignals.notify(job)
        activity.notify(job.id)
        feed.publish(job)
        metrics.jobEnded(job)
        finishedCount += 1
        if job.spec.callback != nil { callbackQueue.yield(job) }
    }

    /// http-runner's `-n`: when a job is created, the oldest finished jobs beyond the limit go.
    /// Purging at creation, not at the end of a job, lets a client read the job it waited for.
    private func purgeBeyondLimit() async {
        if let keep = configuration.maxFinishedJobs, finishedCount > keep {
            do {
                finishedCount -= try await store.purgeFinished(keeping: keep)
            } catch {
                logger.error("cannot purge finished jobs: \(error)")
            }
        }
    }
}

extension Duration {
    var milliseconds: Int {
        Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}
