import XNProtocol

/// Workers joining, leaving and going silent; recovery after a restart; shutdown.
extension SchedulerMachine {
    static let staleAttempt = "the hub no longer runs this attempt"

    /// A worker said hello on `session`: it is welcomed first (before anything a dispatch sends
    /// it), its attempts are bound to the session again, and attempts the hub moved past are
    /// killed or forgotten. A refused hello closes the session with the reason. A worker of the
    /// same name connected under the same `token` is replaced (it reconnected); under another
    /// token, the newcomer is refused.
    mutating func workerJoined(
        _ session: SessionID, _ hello: WorkerHello, inProcess: Bool, token: String? = nil
    ) -> [SchedulerAction] {
        if let refusal = refusal(of: hello, inProcess: inProcess) {
            return [.close(session, reason: refusal)]
        }
        let namesakes = workers.filter { $0.value.name == hello.name && $0.key != session }
        if namesakes.values.contains(where: { $0.token != token }) {
            return [.close(session, reason: "a worker named '\(hello.name)' is already connected under another token")]
        }
        var actions: [SchedulerAction] = []
        for other in namesakes.keys {
            actions.append(.close(other, reason: "replaced by a new connection of the same worker"))
            actions += workerLeft(other, expired: false)
        }
        var worker = Worker(
            session: session, name: hello.name, labels: hello.labels, slots: hello.slots, version: hello.version,
            inProcess: inProcess, token: token, connectedAt: now, lastSeen: now)
        actions.append(
            .send(session, .welcome(Welcome(heartbeat: Double(settings.heartbeatTimeout) / 5 / 1000))))
        var held: Set<AttemptToken> = []
        for report in hello.attempts {
            held.insert(report.attempt)
            guard var attempt = attempts[report.attempt], attempt.job.id == report.job, !attempt.isClosing else {
                // An attempt the hub moved past: the worker must not run or report it.
                actions.append(
                    .send(
                        session,
                        report.end == nil ? .kill(report.attempt, reason: Self.staleAttempt) : .forget(report.attempt)))
                continue
            }
            attempt.session = session
            attempt.deadline = nil
            attempt.worker = hello.name
            attempts[report.attempt] = attempt
            worker.attempts.insert(report.attempt)
            actions.append(
                .send(
                    session,
                    .ack(
                        OutputAck(
                            attempt: report.attempt, stdout: attempt.stored[.stdout] ?? 0,
                            stderr: attempt.stored[.stderr] ?? 0))))
            if attempt.stop == .canceled { actions.append(.send(session, .cancel(report.attempt))) }
        }
        workers[session] = worker
        // Attempts of this worker it no longer holds (it restarted): they are lost now.
        let forgotten = attempts.values.filter {
            $0.worker == hello.name && $0.session == nil && !$0.isClosing && !held.contains($0.token)
                && $0.phase != .claiming
        }
        for attempt in forgotten.sorted(by: { $0.job.seq < $1.job.seq }) {
            actions += expire(attempt.token, reason: "worker \(hello.name) restarted and no longer runs it")
        }
        return actions + dispatch()
    }

    private func refusal(of hello: WorkerHello, inProcess: Bool) -> String? {
        if phase == .recovering { return "the hub is starting; try again" }
        if phase == .draining && !inProcess { return "the hub is shutting down" }
        if hello.name.isEmpty || hello.name.count > 200 { return "hello needs a name of 1 to 200 characters" }
        if !inProcess && hello.name == WireProtocol.inProcessWorkerName {
            return "the worker name '\(hello.name)' is reserved for the hub's own slots; pick another with --name"
        }
        if !(0...1024).contains(hello.slots) { return "slots must be from 0 to 1024" }
        return nil
    }

    /// A session ended or went silent: its attempts wait for the worker to come back until the
    /// heartbeat timeout (at once when `expired`), then are lost or retried.
    mutating func workerLeft(_ session: SessionID, expired: Bool) -> [SchedulerAction] {
        guard let worker = workers.removeValue(forKey: session) else { return [] }
        let deadline = now + (expired ? 0 : settings.heartbeatTimeout)
        for token in worker.attempts {
            attempts[token]?.session = nil
            attempts[token]?.deadline = deadline
        }
        return expired ? tick() : dispatch()
    }

    mutating func heartbeat(_ session: SessionID) {
        workers[session]?.lastSeen = now
    }

    /// The worker takes no new jobs.
    mutating func workerDraining(_ session: SessionID) {
        workers[session]?.draining = true
    }

    /// Time passed: attempts whose worker did not come back are lost (or queued again), failed
    /// store writes are tried again, and the queue is read when the window runs short.
    mutating func tick() -> [SchedulerAction] {
        var actions: [SchedulerAction] = []
        let expired = attempts.values.filter { $0.session == nil && !$0.isClosing && ($0.deadline ?? .max) <= now }
        for attempt in expired.sorted(by: { $0.job.seq < $1.job.seq }) {
            actions += expire(
                attempt.token,
                reason: "\(attempt.runner) lost (no heartbeat within \(settings.heartbeatTimeoutText))")
        }
        for (token, attempt) in attempts {
            guard case .closing(let action, let retryAt?) = attempt.phase, retryAt <= now else { continue }
            attempts[token]?.phase = .closing(action, retryAt: nil)
            actions.append(closeAction(attempt, action))
        }
        return actions + dispatch()
    }

    /// Ends an attempt whose runner is gone: queued again while the job has retries, else lost.
    mutating func expire(_ token: AttemptToken, reason: String) -> [SchedulerAction] {
        guard let attempt = attempts[token] else { return [] }
        if attempt.retriesLeft && attempt.stop == nil {
            return close(token, .requeue(reason: "attempt \(attempt.number): \(reason)"))
        }
        return close(token, .finish(JobOutcome(state: .lost, err: reason, finishedAt: now)))
    }

    /// Which workers are connected, for `GET /v1/workers` (the hub's own slots are not a worker
    /// there).
    func workerList() -> [Worker] {
        workers.values.filter { !$0.inProcess }.sorted { $0.name < $1.name }
    }

    /// Why a queued job waits, for `xn show`.
    func waitingReason(labels: [String: String]) -> String {
        let matching = workers.values.filter { worker in
            !worker.draining && labels.allSatisfy { worker.labels[$0.key] == $0.value }
        }
        if matching.isEmpty {
            if labels.isEmpty { return "waiting for a worker (this hub runs no jobs itself)" }
            let wanted = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            return "waiting for a worker with \(wanted)"
        }
        if matching.contains(where: \.inProcess) { return "waiting for a free slot" }
        return "waiting for a free slot on \(matching.map(\.name).sorted().joined(separator: ", "))"
    }

    // MARK: - Recovery and shutdown

    /// What a previous hub process left assigned or running. Attempts on the hub's own slots died
    /// with it; attempts on workers wait for their worker to come back (twice the heartbeat
    /// timeout, as a restarted hub gives them time to reconnect).
    mutating func recover(active: [JobRecord], queued counts: QueueCounts) -> [SchedulerAction] {
        phase = .running
        queued = counts
        windowComplete = counts.total == 0
        var actions: [SchedulerAction] = []
        for record in active {
            let inProcess = record.worker == nil || record.worker == WireProtocol.inProcessWorkerName
            var attempt = Attempt(
                token: record.attemptToken ?? tokens.next(), job: QueuedJob(record),
                worker: record.worker ?? WireProtocol.inProcessWorkerName, session: nil, inProcess: inProcess,
                phase: record.state == .assigned ? .assigned : .running)
            attempt.stored = [.stdout: record.stdoutBytes, .stderr: record.stderrBytes]
            attempt.outputCap = record.spec.outputCap(within: settings.maxOutputBytes)
            attempt.number = record.attempts
            attempt.retries = record.spec.retries
            attempt.fenced = record.attemptToken != nil
            attempt.deadline = now + settings.heartbeatTimeout * 2
            track(attempt)
            if inProcess || !attempt.fenced {
                let reason = "hub stopped while the job was running; its exit was not recorded"
                if attempt.fenced && attempt.retriesLeft {
                    actions += close(attempt.token, .requeue(reason: "attempt \(attempt.number): \(reason)"))
                } else {
                    actions += close(attempt.token, .finish(JobOutcome(state: .lost, err: reason, finishedAt: now)))
                }
            }
        }
        return actions + dispatch()
    }

    /// The hub shuts down: nothing new is placed. Queued jobs stay queued for the next start;
    /// attempts on workers go on and are adopted by the next start.
    mutating func shutdown() {
        phase = .draining
    }
}

extension SchedulerMachine.Attempt {
    var isClosing: Bool {
        if case .closing = phase { return true }
        return false
    }

    /// The hub could not store its output: what still comes is taken and dropped.
    var lostOutput: Bool {
        if case .outputLost? = stop { return true }
        return false
    }
}
