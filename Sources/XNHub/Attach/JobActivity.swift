import Synchronization
import XNProtocol
import XNStore

/// Tells attach sessions that a job's stored output grew (with the bytes, so a session that is
/// up to date sends them without reading the store) or that the job ended. A session subscribes
/// before it reads the store, so nothing stored after its read goes unnoticed.
final class JobActivity: Sendable {
    /// What happened: `output` carries bytes about to be stored at `offset`, `stored` says the
    /// store now holds a stream up to an offset, `changed` means "look again" (the job ended).
    enum Event: Sendable {
        case output(OutputStreamKind, offset: Int, bytes: [UInt8])
        case stored(OutputStreamKind, upTo: Int)
        case changed
    }

    private let subscribers = Mutex<[JobID: [UInt64: AsyncStream<Event>.Continuation]]>([:])
    private let counter = Atomic<UInt64>(0)

    /// Events for `id` until the stream is dropped. A slow session loses the oldest; it notices
    /// the gap by offset and reads the store instead. Sixteen events (a worker's frames are up to
    /// 1 MiB each) bound what a slow client costs the hub; 64 held 30 MiB more at the peak of a
    /// 1 GiB job with one client attached.
    func subscribe(_ id: JobID) -> AsyncStream<Event> {
        let ticket = counter.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(16))
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
        publish(id, .changed)
    }

    /// Output bytes on their way to the store: a session that is up to date sends them at once.
    /// They are copied out of a worker's frame only when a session is attached.
    func output(_ id: JobID, _ stream: OutputStreamKind, offset: Int, bytes: @autoclosure () -> [UInt8]) {
        publish(id) { .output(stream, offset: offset, bytes: bytes()) }
    }

    /// The store now holds `stream` up to `offset`: a session that fell behind reads it from there.
    func stored(_ id: JobID, _ stream: OutputStreamKind, upTo offset: Int) {
        publish(id, .stored(stream, upTo: offset))
    }

    private func publish(_ id: JobID, _ event: Event) {
        publish(id) { event }
    }

    /// Makes the event only when someone is subscribed to `id`.
    private func publish(_ id: JobID, _ event: () -> Event) {
        let continuations = subscribers.withLock { $0[id].map { Array($0.values) } ?? [] }
        guard !continuations.isEmpty else { return }
        let event = event()
        for continuation in continuations { continuation.yield(event) }
    }
}
