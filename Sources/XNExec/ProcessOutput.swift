import Foundation

/// A process's output as an async sequence with a bounded hand-off: the thread reading the pipes
/// waits while `capacity` chunks are unread, so a slow consumer slows the process (through its
/// full pipe) instead of growing memory.
///
/// - Important: Read it to the end. A process whose output nobody reads stops once `capacity`
///   chunks wait, and its end is not reported until they are read.
public struct ProcessOutput: AsyncSequence, Sendable {
    public typealias Element = OutputChunk

    private let stream: AsyncStream<OutputChunk>
    private let credits: OutputCredits

    /// Chunks (of up to 64 KiB each) that may wait between the reading thread and the consumer.
    public static let capacity = 16

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

/// Counts chunks handed over but not yet read; the reading thread blocks on it.
final class OutputCredits: @unchecked Sendable {
    private let condition = NSCondition()
    private var available: Int
    private var abandoned = false

    init(_ capacity: Int) {
        available = capacity
    }

    /// Blocks the calling (non-async) thread until a chunk may be handed over.
    func acquire() {
        condition.lock()
        defer { condition.unlock() }
        while available == 0 && !abandoned { condition.wait() }
        if !abandoned { available -= 1 }
    }

    func release() {
        condition.lock()
        available += 1
        condition.signal()
        condition.unlock()
    }

    /// The consumer is gone: never block again.
    func abandon() {
        condition.lock()
        abandoned = true
        condition.broadcast()
        condition.unlock()
    }
}
