public import Foundation
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
    /// Starts a new attempt of a queued job (`assigned` for a worker, `running` locally) under `token`.
    func claim(_ id: JobID, worker: String, token: UInt64?, state: JobState, at time: Int64) async throws -> Bool
    /// An assigned attempt reported its process started; false if `token` is no longer current.
    func markStarted(_ id: JobID, token: UInt64) async throws -> Bool
    /// Puts a lost attempt's job back in the queue (a retry), dropping that attempt's output.
    func requeue(_ id: JobID, token: UInt64, reason: String) async throws -> Bool
    /// Jobs assigned to or running on remote workers: after a restart they wait for their worker.
    func remoteAttempts() async throws -> [JobRecord]
    /// Appends bytes at `offset` of one stream of a job.
    func appendOutput(_ id: JobID, stream: OutputStreamName, offset: Int, data: Data) async throws
    /// Records how a job ended; nil when it had already ended (the first end wins) or, with a
    /// `token`, when that attempt is no longer the job's current one.
    func finish(_ id: JobID, _ outcome: JobOutcome, token: UInt64?) async throws -> JobRecord?
    /// Up to `limit` bytes of one stream from `offset`.
    func output(_ id: JobID, stream: OutputStreamName, from offset: Int, limit: Int) async throws -> [UInt8]
    /// Ends every job left running on the hub's own slots by a previous hub process as `lost`.
    func markInterruptedLost(reason: String, at time: Int64) async throws -> Int
    /// Deletes the oldest finished jobs beyond `keeping`; queued and running jobs are never purged.
    func purgeFinished(keeping: Int) async throws -> Int
    func setCallbackStatus(_ id: JobID, _ status: String) async throws
    /// Jobs in each state, for `xn list` summaries and the benchmark.
    func count(state: JobState?) async throws -> Int
    /// Queued jobs submitted with the token named `owner` (its queue cap).
    func countQueued(owner: String) async throws -> Int
}

/// A job's output streams, as stored.
public enum OutputStreamName: Int, Sendable, CaseIterable {
    case stdout = 1
    case stderr = 2
}

extension JobStore {
    public func finish(_ id: JobID, _ outcome: JobOutcome) async throws -> JobRecord? {
        try await finish(id, outcome, token: nil)
    }
}
