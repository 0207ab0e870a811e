import Synchronization

/// A process's output as an async sequence with a bounded hand-off: the reactor stops reading a
/// process's pipes while `capacity` chunks are unread, so a slow consumer slows the process
/// (through its full pipe) instead of growing memory.
///
/// - Important: Read it to the end. A process whose output nobody reads stops once `capacity`
///   chunks wait, and its end is not reported until they are read.
public struct ProcessOutput: AsyncSequence, Sendable {
    public typealias Element = OutputChunk

    private let stream: AsyncStream<OutputChunk>
    private let credits: OutputCredits

    /// Chunks (of up to 256 KiB each, `ReactorLoop.readSize`) that may wait between the reactor and
    /// the consumer: about 1 MiB per job whatever it writes.
    public static let capacity = 4

    init(stream: AsyncStream<OutputChunk>, credits: OutputCredits) {
        self.stream = stream
        self.credits = credits
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), credits: credits)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<OutputChunk>.Iterator
        let credits: OutputCredits

        public mutating func next() async -> OutputChunk? {
            let chunk = await base.next()
            if chunk != nil { credits.release() }
            return chunk
        }
    }
}

/// Counts chunks handed over but not yet read. The reactor takes one per chunk; when none is left
/// it stops reading the process until the consumer gives one back, which calls `onAvailable`.
final class OutputCredits: Sendable {
    private struct State {
        var available: Int
        var abandoned = false
        /// A `tryAcquire` failed and nobody has been told of a credit since.
        var waiting = false
    }

    private let state: Mutex<State>
    private let onAvailable: @Sendable () -> Void

    init(_ capacity: Int, onAvailable: @escaping @Sendable () -> Void) {
        state = Mutex(State(available: capacity))
        self.onAvailable = onAvailable
    }

    /// Takes a credit if there is one (always, once the consumer is gone); false marks the
    /// caller as waiting for `onAvailable`.
    func tryAcquire() -> Bool {
        state.withLock { state in
            if state.abandoned { return true }
            if state.available > 0 {
                state.available -= 1
                return true
            }
            state.waiting = true
            return false
        }
    }

    func release() {
        let wake = state.withLock { state in
            state.available += 1
            defer { state.waiting = false }
            return state.waiting
        }
        if wake { onAvailable() }
    }

    /// The consumer is gone: every later `tryAcquire` succeeds.
    func abandon() {
        let wake = state.withLock { state in
            state.abandoned = true
            defer { state.waiting = false }
            return state.waiting
        }
        if wake { onAvailable() }
    }
}
