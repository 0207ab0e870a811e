import XNProtocol

/// Submissions, the queue window, placement and cancel.
extension SchedulerMachine {
    /// What a submission needs to be placed or queued.
    struct Submission: Equatable {
        var job: QueuedJob
        /// The submitting token's own queue cap, if it has one.
        var ownerCap: Int?
        /// Bytes kept per stream (the job's `max_output` within the hub's).
        var outputCap: Int
        var retries: Int
    }

    /// What becomes of a submission before it is stored.
    enum SubmitDecision: Equatable {
        /// A slot is free and nothing waits: store it as `state`, already placed on `worker`.
        case start(AttemptToken, worker: String, state: JobState)
        /// Store it as queued; its place in the queue is reserved.
        case queue
        /// A queue cap is reached; nothing is stored.
        case refuse(QueueFull)
    }

    /// Decides a submission: start at once, queue (reserving its place under the caps), or refuse.
    mutating func submit(_ submission: Submission) -> SubmitDecision {
        let job = submission.job
        if phase == .running, queued.total == 0, let session = pickWorker(for: job.labels),
            let worker = workers[session]
        {
            let token = newToken()
            var attempt = Attempt(
                token: token, job: job, worker: worker.name, session: session, inProcess: worker.inProcess,
                phase: .claiming)
            attempt.outputCap = submission.outputCap
            attempt.retries = submission.retries
            track(attempt)
            return .start(token, worker: worker.name, state: worker.inProcess ? .running : .assigned)
        }
        if let limit = settings.maxQueued, queued.total >= limit { return .refuse(QueueFull(limit: limit)) }
        if let owner = job.owner, let cap = submission.ownerCap, queued.byOwner[owner, default: 0] >= cap {
            return .refuse(QueueFull(limit: cap, token: owner))
        }
        reserve(job.owner, 1)
        return .queue
    }

    /// A job decided `.queue` is stored: it joins the window (when the window has all of the
    /// queue and room for it), and may be placed at once.
    mutating func queuedStored(_ job: QueuedJob) -> [SchedulerAction] {
        if windowComplete && window.count < settings.windowSize {
            insertInWindow(job)
        } else {
            windowComplete = false
        }
        return dispatch()
    }

    /// A job decided `.queue` could not be stored: its reserved place goes.
    mutating func queuedNotStored(owner: String?) -> [SchedulerAction] {
        reserve(owner, -1)
        return []
    }

    /// A job decided `.start` is stored as running (or assigned): send it to its worker.
    mutating func startStored(_ token: AttemptToken, _ record: JobRecord) -> [SchedulerAction] {
        guard var attempt = attempts[token] else { return [] }
        attempt.phase = record.state == .running ? .running : .assigned
        attempt.number = record.attempts
        attempts[token] = attempt
        return assign(token, record)
    }

    /// A job decided `.start` could not be stored: its slot is free again.
    mutating func startNotStored(_ token: AttemptToken) -> [SchedulerAction] {
        release(token)
        return dispatch()
    }

    // MARK: - Placement

    /// Places the oldest queued jobs on free slots, in queue order, skipping jobs no free worker
    /// can take; asks for more of the queue when the window runs short.
    mutating func dispatch() -> [SchedulerAction] {
        guard phase == .running else { return [] }
        var actions: [SchedulerAction] = []
        var index = 0
        while index < window.count, workers.values.contains(where: { $0.freeSlots > 0 }) {
            let job = window[index]
            guard let session = pickWorker(for: job.labels), let worker = workers[session] else {
                index += 1
                continue
            }
            window.remove(at: index)
            let token = newToken()
            track(
                Attempt(
                    token: token, job: job, worker: worker.name, session: session, inProcess: worker.inProcess,
                    phase: .claiming))
            actions.append(.claim(token, job.id, worker: worker.name, state: worker.inProcess ? .running : .assigned))
        }
        if !windowComplete && !loadingQueue && window.count < settings.windowSize / 2 {
            loadingQueue = true
            actions.append(.loadQueue(limit: settings.windowSize))
        }
        return actions
    }

    /// The worker a job with `labels` goes to: the hub's own slots first (for jobs without
    /// labels), else the least loaded worker that carries the labels and has a free slot.
    func pickWorker(for labels: [String: String]) -> SessionID? {
        let fits = workers.values.filter { worker in
            worker.freeSlots > 0 && labels.allSatisfy { worker.labels[$0.key] == $0.value }
        }
        if let local = fits.first(where: \.inProcess) { return local.session }
        return fits.min { a, b in
            let load = (a.attempts.count * 1000 / max(1, a.slots), b.attempts.count * 1000 / max(1, b.slots))
            return load.0 != load.1 ? load.0 < load.1 : a.session < b.session
        }?.session
    }

    /// A claim was stored (`record`), or found the job no longer queued (nil).
    mutating func claimed(_ token: AttemptToken, _ record: JobRecord?) -> [SchedulerAction] {
        guard var attempt = attempts[token] else { return [] }
        guard let record else {
            // Canceled (or claimed) meanwhile: nothing to run.
            release(token)
            return dispatch()
        }
        reserve(attempt.job.owner, -1)
        attempt.phase = record.state == .running ? .running : .assigned
        attempt.number = record.attempts
        attempt.retries = record.spec.retries
        attempt.outputCap = record.spec.outputCap(within: settings.maxOutputBytes)
        attempts[token] = attempt
        return assign(token, record)
    }

    /// A claim could not be stored: the job stays queued and is tried again on the next pass.
    mutating func claimFailed(_ token: AttemptToken) -> [SchedulerAction] {
        guard let attempt = attempts[token] else { return [] }
        release(token)
        insertInWindow(attempt.job)
        return []
    }

    /// Sends a stored attempt to its worker with the input that waited for it; a cancel that
    /// came while it was stored ends it instead.
    private mutating func assign(_ token: AttemptToken, _ record: JobRecord) -> [SchedulerAction] {
        guard let attempt = attempts[token] else { return [] }
        if attempt.stop == .canceled {
            return close(token, .finish(canceledBeforeStart()))
        }
        guard let session = attempt.session, workers[session] != nil else {
            // The worker left while the attempt was stored: it waits for the worker like any other.
            return []
        }
        var actions: [SchedulerAction] = [
            .send(
                session,
                .assign(
                    Assignment(attempt: token, job: record.id, spec: record.spec, outputLimit: attempt.outputCap)))
        ]
        for action in pendingInput.removeValue(forKey: record.id)?.actions ?? [] {
            actions.append(.send(session, action.message(for: token)))
        }
        return actions
    }

    /// The oldest queued jobs as the store has them now; the window becomes them plus what it
    /// learnt meanwhile, without jobs already placed or being canceled.
    mutating func queueLoaded(_ jobs: [QueuedJob]) -> [SchedulerAction] {
        loadingQueue = false
        windowComplete = jobs.count < settings.windowSize
        var known = Set(window.map(\.id))
        for job in jobs where !known.contains(job.id) && attemptOfJob[job.id] == nil && canceling[job.id] == nil {
            insertInWindow(job)
            known.insert(job.id)
        }
        return dispatch()
    }

    mutating func queueLoadFailed() {
        loadingQueue = false
    }

    // MARK: - Cancel

    /// What the driver does about a cancel.
    enum CancelDecision: Equatable {
        /// The job ends soon (or already ends): carry out the actions and wait for its end.
        case waitForEnd([SchedulerAction])
        /// The job is queued: store its cancel (`canceledBeforeStart`), then report with
        /// `queuedCancelStored` or `queuedCancelFailed`.
        case storeCancel(JobID, JobOutcome)
        /// The machine does not know the job: it may be queued beyond the window, ended, or absent.
        case unknown
    }

    mutating func cancel(_ id: JobID) -> CancelDecision {
        if let token = attemptOfJob[id], var attempt = attempts[token] {
            if case .closing = attempt.phase { return .waitForEnd([]) }
            if attempt.stop == nil { attempt.stop = .canceled }
            attempts[token] = attempt
            switch (attempt.phase, attempt.session) {
            case (.claiming, _):
                return .waitForEnd([])  // ends as soon as its claim is stored
            case (_, let session?):
                return .waitForEnd([.send(session, .cancel(token))])
            case (_, nil):
                // Its worker is away: the cancel is final now; if the worker comes back it is told to kill.
                let outcome = JobOutcome(
                    state: .canceled, err: "canceled while its worker was disconnected", finishedAt: now)
                return .waitForEnd(close(token, .finish(outcome)))
            }
        }
        if let index = window.firstIndex(where: { $0.id == id }) {
            return cancelQueued(window.remove(at: index))
        }
        return .unknown
    }

    /// Cancels a queued job the store knows and the window may not hold.
    mutating func cancelQueued(_ job: QueuedJob) -> CancelDecision {
        // Placed while the driver read the store: it is an attempt now.
        if attemptOfJob[job.id] != nil { return cancel(job.id) }
        window.removeAll { $0.id == job.id }
        canceling[job.id] = job
        return .storeCancel(job.id, canceledBeforeStart())
    }

    /// A queued job's cancel was stored (`record`), or the job was no longer queued (nil).
    mutating func queuedCancelStored(_ id: JobID, _ record: JobRecord?) -> [SchedulerAction] {
        guard let job = canceling.removeValue(forKey: id) else { return [] }
        guard let record else { return [] }
        reserve(job.owner, -1)
        pendingInput[id] = nil
        return [.announce(record)]
    }

    /// A queued job's cancel could not be stored: it stays queued.
    mutating func queuedCancelFailed(_ id: JobID) -> [SchedulerAction] {
        guard let job = canceling.removeValue(forKey: id) else { return [] }
        if windowComplete { insertInWindow(job) }
        return dispatch()
    }

    func canceledBeforeStart() -> JobOutcome {
        JobOutcome(state: .canceled, err: "canceled before it started", finishedAt: now)
    }

    // MARK: - Helpers

    mutating func insertInWindow(_ job: QueuedJob) {
        guard !window.contains(where: { $0.id == job.id }) else { return }
        let index = window.firstIndex { $0.seq > job.seq } ?? window.endIndex
        window.insert(job, at: index)
    }

    mutating func reserve(_ owner: String?, _ count: Int) {
        queued.total = max(0, queued.total + count)
        if let owner {
            let value = max(0, queued.byOwner[owner, default: 0] + count)
            queued.byOwner[owner] = value == 0 ? nil : value
        }
    }

    mutating func track(_ attempt: Attempt) {
        attempts[attempt.token] = attempt
        attemptOfJob[attempt.job.id] = attempt.token
        if let session = attempt.session { workers[session]?.attempts.insert(attempt.token) }
    }

    /// Forgets an attempt and frees its worker's slot.
    mutating func release(_ token: AttemptToken) {
        guard let attempt = attempts.removeValue(forKey: token) else { return }
        if attemptOfJob[attempt.job.id] == token { attemptOfJob[attempt.job.id] = nil }
        if let session = attempt.session { workers[session]?.attempts.remove(token) }
    }

    mutating func newToken() -> AttemptToken {
        tokens.next()
    }
}

/// A submission that would queue more jobs than a cap allows.
public struct QueueFull: Error, Sendable, Equatable {
    public let limit: Int
    /// The token whose own cap was reached; nil for the hub-wide one.
    public var token: String?

    public var message: String {
        guard let token else {
            return "the hub already has \(limit) job(s) queued, its limit (--max-queued); try again later"
        }
        return "token '\(token)' already has \(limit) job(s) queued, its limit; try again later"
    }
}
