public import XNProtocol

/// Durable home of jobs and their output. The queue lives here, not in memory.
public protocol JobStore: Sendable {
    /// Stores a new job (queued, or running when it starts at once) and returns it with its
    /// submission order set.
    func insert(_ job: JobRecord) async throws -> JobRecord
    func job(_ id: JobID) async throws -> JobRecord?
    /// Newest first; `states` nil means all; `before` is a `seq` to page back from.
    func list(states: [JobState]?, before: Int64?, limit: Int) async throws -> [JobRecord]
    /// Oldest queued jobs first.
    func queued(limit: Int) async throws -> [JobRecord]
    /// Moves a queued job to running; false when it was no longer queued (canceled meanwhile).
    func markRunning(_ id: JobID, worker: String, at time: Int64) async throws -> Bool
    /// Appends bytes at `offset` of one stream of a job.
    func appendOutput(_ id: JobID, stream: OutputStreamName, offset: Int, bytes: [UInt8]) async throws
    /// Records how a job ended; nil when it had already ended (the first end wins).
    func finish(_ id: JobID, _ outcome: JobOutcome) async throws -> JobRecord?
    /// Up to `limit` bytes of one stream from `offset`.
    func output(_ id: JobID, stream: OutputStreamName, from offset: Int, limit: Int) async throws -> [UInt8]
    /// Ends every job left assigned or running by a previous hub process as `lost`.
    func markInterruptedLost(reason: String, at time: Int64) async throws -> Int
    /// Deletes the oldest finished jobs beyond `keeping`; queued and running jobs are never purged.
    func purgeFinished(keeping: Int) async throws -> Int
    func setCallbackStatus(_ id: JobID, _ status: String) async throws
    /// Jobs in each state, for `xn list` summaries and the benchmark.
    func count(state: JobState?) async throws -> Int
}

/// A job's output streams, as stored.
public enum OutputStreamName: Int, Sendable, CaseIterable {
    case stdout = 1
    case stderr = 2
}
