import XNProtocol

/// Reports about attempts (started, output, ended), closing them, signals and input.
extension SchedulerMachine {
    /// An attempt's process started on `session`.
    mutating func started(_ token: AttemptToken, session: SessionID) -> [SchedulerAction] {
        guard var attempt = attempts[token], attempt.session == session else {
            return [.send(session, .kill(token, reason: Self.staleAttempt))]
        }
        guard attempt.phase == .assigned else { return [] }
        attempt.phase = .running
        attempts[token] = attempt
        return [.markStarted(attempt.job.id, token)]
    }

    /// Where output of an attempt goes.
    enum OutputTarget: Equatable {
        /// Store it at `stored`, keeping at most `cap` bytes of the stream.
        case store(JobID, stored: Int, cap: Int)
        /// Take it and store nothing: the attempt's output could not be kept, or it is closing.
        case discard
        /// The hub moved past the attempt (or never knew it): the worker must kill it.
        case stale
    }

    func outputTarget(_ token: AttemptToken, _ stream: OutputStreamKind, session: SessionID) -> OutputTarget {
        guard let attempt = attempts[token], attempt.session == session else { return .stale }
        if attempt.isClosing || attempt.lostOutput { return .discard }
        return .store(attempt.job.id, stored: attempt.stored[stream] ?? 0, cap: attempt.outputCap)
    }

    /// Output was stored (or skipped) up to `offset`: a remote worker may drop it from its spool.
    mutating func outputStored(
        _ token: AttemptToken, _ stream: OutputStreamKind, upTo offset: Int
    )
        -> [SchedulerAction]
    {
        guard var attempt = attempts[token] else { return [] }
        attempt.stored[stream] = max(attempt.stored[stream] ?? 0, offset)
        attempts[token] = attempt
        guard !attempt.inProcess, let session = attempt.session else { return [] }
        return [
            .send(
                session,
                .ack(
                    OutputAck(
                        attempt: token, stdout: attempt.stored[.stdout] ?? 0, stderr: attempt.stored[.stderr] ?? 0)))
        ]
    }

    /// Output could not be stored even after retries: the job is stopped and fails with why.
    mutating func outputFailed(_ token: AttemptToken, _ error: String) -> [SchedulerAction] {
        guard var attempt = attempts[token], attempt.stop == nil || attempt.stop == .canceled else { return [] }
        attempt.stop = .outputLost("the hub could not store the job's output: \(error)")
        attempts[token] = attempt
        guard let session = attempt.session else { return [] }
        return [.send(session, .cancel(token))]
    }

    /// An attempt ended on `session`. Returns a problem (which ends the worker's link) when the
    /// end claims more output than the hub stored; else the actions that store the end.
    mutating func ended(
        _ token: AttemptToken, _ end: AttemptEnd, session: SessionID
    ) -> (
        problem: String?, actions: [SchedulerAction]
    ) {
        guard let attempt = attempts[token], attempt.session == session, !attempt.isClosing else {
            return (nil, [.send(session, .forget(token))])
        }
        // Output the hub or the runner could not keep: fewer bytes than the end counts arrived.
        let outputLost = if case .outputLost? = end.stop { true } else { attempt.lostOutput }
        for stream in OutputStreamKind.allCases where !outputLost {
            let expected = min(end.bytes(stream), attempt.outputCap)
            let stored = attempt.stored[stream] ?? 0
            if stored < expected {
                return ("attempt \(token) ended with \(stream.name) at \(stored) of \(expected) bytes", [])
            }
        }
        if case .notStarted = end.termination, end.stop == .shutdown, attempt.stop == nil {
            // Its runner was shutting down and never ran it: it waits for another.
            return (nil, close(token, .requeue(reason: "\(attempt.runner) was shutting down")))
        }
        let outcome = JobOutcome(
            end, stop: attempt.stop, runner: attempt.runner, outputCap: attempt.outputCap, at: now)
        if outcome.state == .lost && attempt.retriesLeft {
            return (nil, close(token, .requeue(reason: "attempt \(attempt.number): \(outcome.err ?? "lost")")))
        }
        return (nil, close(token, .finish(outcome)))
    }

    // MARK: - Closing

    /// Starts storing an attempt's end or its return to the queue; the attempt keeps its slot
    /// until the store answers.
    mutating func close(_ token: AttemptToken, _ action: CloseAction) -> [SchedulerAction] {
        guard var attempt = attempts[token], !attempt.isClosing else { return [] }
        attempt.phase = .closing(action, retryAt: nil)
        attempts[token] = attempt
        return [closeAction(attempt, action)]
    }

    func closeAction(_ attempt: Attempt, _ action: CloseAction) -> SchedulerAction {
        switch action {
        case .finish(let outcome): .finish(attempt.job.id, attempt.token, fenced: attempt.fenced, outcome)
        case .requeue(let reason): .requeue(attempt.job.id, attempt.token, reason: reason)
        }
    }

    /// An attempt's end was stored (`record`), or the store had moved past it (nil): the worker
    /// may forget it, waiters hear of it, its slot takes the next job.
    mutating func finished(_ token: AttemptToken, _ record: JobRecord?) -> [SchedulerAction] {
        guard let attempt = attempts[token] else { return [] }
        var actions: [SchedulerAction] = []
        if let session = attempt.session { actions.append(.send(session, .forget(token))) }
        release(token)
        pendingInput[attempt.job.id] = nil
        if let record { actions.append(.announce(record)) }
        return actions + dispatch()
    }

    /// A lost attempt's job is queued again (`requeued`), or the store had moved past it.
    mutating func requeued(_ token: AttemptToken, _ requeued: Bool) -> [SchedulerAction] {
        guard let attempt = attempts[token] else { return [] }
        var actions: [SchedulerAction] = []
        if let session = attempt.session { actions.append(.send(session, .forget(token))) }
        release(token)
        if requeued {
            reserve(attempt.job.owner, 1)
            if windowComplete && window.count < settings.windowSize {
                insertInWindow(attempt.job)
            } else {
                windowComplete = false
            }
        }
        return actions + dispatch()
    }

    /// Storing a close failed: it is tried again after `closeRetryDelay`.
    mutating func closeFailed(_ token: AttemptToken) {
        guard case .closing(let action, _)? = attempts[token]?.phase else { return }
        attempts[token]?.phase = .closing(action, retryAt: now + Self.closeRetryDelay)
    }

    /// Milliseconds before a failed store write of an attempt's end is tried again.
    static let closeRetryDelay: Int64 = 1000

    // MARK: - Signals and input

    /// What becomes of a signal for a job.
    enum SignalDecision: Equatable {
        case send(SessionID, HubMessage)
        case notRunning(String)
        /// Not an attempt the machine knows: the store says whether the job exists.
        case unknown
    }

    func signal(_ id: JobID, _ signal: Int32) -> SignalDecision {
        guard let token = attemptOfJob[id], let attempt = attempts[token] else { return .unknown }
        switch attempt.phase {
        case .closing: return .notRunning("already ended")
        case .claiming, .assigned: return .notRunning("it has not started")
        case .running:
            guard let session = attempt.session else { return .notRunning("its worker is disconnected") }
            return .send(session, .signal(token, signal))
        }
    }

    /// What becomes of input for a job.
    enum InputDecision: Equatable {
        case send(SessionID, HubMessage)
        /// Kept for the job until its process exists.
        case held
        case refused(String)
        /// Not a job the machine knows: the store says whether it is queued (then `holdInput`).
        case unknown
    }

    mutating func input(_ id: JobID, _ action: InputAction) -> InputDecision {
        if let token = attemptOfJob[id], var attempt = attempts[token] {
            if let refusal = refusal(of: action, by: attempt.job, inputClosed: attempt.inputClosed) {
                return .refused(refusal)
            }
            switch attempt.phase {
            case .closing: return .refused("the job is not running")
            case .claiming: return holdInput(id, action)
            case .assigned, .running:
                guard let session = attempt.session else { return .refused("the job's worker is disconnected") }
                if action == .close {
                    attempt.inputClosed = true
                    attempts[token] = attempt
                }
                return .send(session, action.message(for: token))
            }
        }
        if let job = window.first(where: { $0.id == id }) {
            guard job.keepsInputOpen else { return .refused("the job is not running") }
            if let refusal = refusal(of: action, by: job, inputClosed: false) { return .refused(refusal) }
            return holdInput(id, action)
        }
        return .unknown
    }

    /// Why the job cannot take `action` whatever its phase (its spec says so, or its input was
    /// closed); the same answer a local process gives.
    private func refusal(of action: InputAction, by job: QueuedJob, inputClosed: Bool) -> String? {
        switch action {
        case .bytes, .close:
            job.keepsInputOpen && !inputClosed ? nil : "the job's input is closed"
        case .resize:
            job.hasTerminal ? nil : "the job has no terminal"
        }
    }

    /// Keeps input typed before the job started (up to `PendingInput.limit`).
    mutating func holdInput(_ id: JobID, _ action: InputAction) -> InputDecision {
        if let token = attemptOfJob[id], attempts[token]?.phase != .claiming { return input(id, action) }
        var pending = pendingInput[id] ?? PendingInput()
        guard pending.bytes + action.size <= PendingInput.limit else { return .refused("the job has not started yet") }
        pending.actions.append(action)
        pending.bytes += action.size
        pendingInput[id] = pending
        return .held
    }
}
