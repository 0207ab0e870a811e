import Synchronization
import XNProtocol

/// Every stored change of a job's state (submitted, started, queued again, ended), for pages that
/// show a live job list. A subscriber too slow to keep up loses the oldest changes, never the hub's
/// time: a list that missed one reloads.
final class JobFeed: Sendable {
    private let subscribers = Mutex<[UInt64: AsyncStream<JobRecord>.Continuation]>([:])
    private let counter = Atomic<UInt64>(0)

    /// Changes from now until the stream is dropped.
    func subscribe() -> AsyncStream<JobRecord> {
        let ticket = counter.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream.makeStream(
            of: JobRecord.self, bufferingPolicy: .bufferingNewest(Self.backlog))
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: ticket) }
        }
        subscribers.withLock { $0[ticket] = continuation }
        return stream
    }

    /// Whether anyone listens: a change that would need a read to publish is skipped otherwise.
    var isWatched: Bool { subscribers.withLock { !$0.isEmpty } }

    func publish(_ job: JobRecord) {
        let continuations = subscribers.withLock { Array($0.values) }
        for continuation in continuations { continuation.yield(job) }
    }

    /// Changes a subscriber may fall behind by before it loses the oldest.
    static let backlog = 256
}
