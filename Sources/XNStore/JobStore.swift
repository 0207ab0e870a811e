public import XNProtocol

/// Durable home of jobs and their output. The queue lives here, not in memory.
///
/// Every change of a job's state is one of `JobState.canMove(to:)`; the store refuses any other
/// (the call returns false or nil), so a late or duplicate report never moves a job backwards.
public protocol JobStore: Sendable {
    /// Stores a new job in an initial state (queued, or assigned or running when it starts at
    /// once) and returns it with its submission order set; throws for a terminal state.
    func insert(_ job: JobRecord) async throws -> JobRecord
    func job(_ id: JobID) async throws -> JobRecord?
    /// Newest first, those `filter` keeps; `before` is a `seq` to page back from.
    func list(_ filter: JobFilter, before: Int64?, limit: Int) async throws -> [JobRecord]
    /// The oldest queued jobs, oldest first.
    func queued(limit: Int) async throws -> [QueuedJob]
    /// Queued jobs in all and per owner (the queue caps).
    func queueCounts() async throws -> QueueCounts
    /// Starts a new attempt of a queued job under `token`, as `assigned` (a remote worker) or
    /// `running`; returns the job, or nil when it was no longer queued.
    func claim(
        _ id: JobID, worker: String, token: AttemptToken, state: JobState, at time: Int64
    ) async throws
        -> JobRecord?
    /// An assigned attempt reported its process started; false if `token` is no longer current.
    func markStarted(_ id: JobID, token: AttemptToken) async throws -> Bool
    /// Puts the job of a lost attempt back in the queue (a retry), dropping that attempt's output;
    /// false if `token` is no longer current.
    func requeue(_ id: JobID, token: AttemptToken, reason: String) async throws -> Bool
    /// Jobs assigned or running: after a restart the hub resolves or adopts their attempts.
    func activeJobs() async throws -> [JobRecord]
    /// Appends bytes at `offset` of one stream of a job (a slice: output arrives as part of a
    /// worker's frame, and is written from there without a copy).
    func appendOutput(_ id: JobID, stream: OutputStreamKind, offset: Int, bytes: ArraySlice<UInt8>) async throws
    /// Records how a job ended; nil when it had already ended (the first end wins), when its state
    /// cannot move to the outcome's, or, with a `token`, when that attempt is no longer current.
    func finish(_ id: JobID, _ outcome: JobOutcome, token: AttemptToken?) async throws -> JobRecord?
    /// Up to `limit` bytes of one stream from `offset`.
    func output(_ id: JobID, stream: OutputStreamKind, from offset: Int, limit: Int) async throws -> [UInt8]
    /// Deletes the oldest finished jobs beyond `keeping`; queued and running jobs are never purged.
    func purgeFinished(keeping: Int) async throws -> Int
    /// Records a callback delivery attempt (or its end): the log in the job's view, and what a
    /// restarted hub resumes from. `status` is the one-line summary people read.
    func recordCallback(_ id: JobID, _ delivery: CallbackDelivery, status: String?) async throws
    /// Ended jobs whose callback is still to be delivered, oldest first.
    func pendingCallbacks() async throws -> [JobRecord]
    /// Jobs in a state (nil: all).
    func count(state: JobState?) async throws -> Int
}

extension JobStore {
    public func finish(_ id: JobID, _ outcome: JobOutcome) async throws -> JobRecord? {
        try await finish(id, outcome, token: nil)
    }
}

/// Which jobs a listing keeps; every field left nil or empty keeps all.
public struct JobFilter: Sendable, Equatable {
    public var states: [JobState]?
    /// The token name that submitted them.
    public var owner: String?
    /// Labels they must all carry, with these values.
    public var labels: [String: String]
    /// Text their id, command, arguments or owner contain (case-sensitive).
    public var text: String?

    public init(states: [JobState]? = nil, owner: String? = nil, labels: [String: String] = [:], text: String? = nil) {
        self.states = states
        self.owner = owner
        self.labels = labels
        self.text = text
    }
}
