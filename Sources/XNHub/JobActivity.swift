import Synchronization
import XNProtocol

/// Wakes attach sessions when a job's stored output grows or the job ends. A session subscribes
/// before it reads the store, so nothing stored after its read goes unnoticed.
final class JobActivity: Sendable {
    private let subscribers = Mutex<[JobID: [UInt64: AsyncStream<Void>.Continuation]]>([:])
    private let counter = Atomic<UInt64>(0)

    /// Wake-ups for `id` until the stream is dropped; bursts fold into one.
    func subscribe(_ id: JobID) -> AsyncStream<Void> {
        let ticket = counter.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        continuation.onTermination = { [weak self] _ in
            self?.subscribers.withLock { all in
                all[id]?[ticket] = nil
                if all[id]?.isEmpty == true { all[id] = nil }
            }
        }
        subscribers.withLock { $0[id, default: [:]][ticket] = continuation }
        return stream
    }

    func notify(_ id: JobID) {
        let continuations = subscribers.withLock { $0[id].map { Array($0.values) } ?? [] }
        for continuation in continuations { continuation.yield() }
    }
}
