import Synchronization

/// The hub as a worker in its own process reaches it: the same messages a remote worker sends,
/// as plain values (no socket, no JSON).
public protocol HubInbox: Sendable {
    /// Hands the hub a message; returns once the hub has handled it.
    func receive(_ message: WorkerMessage) async
    /// Hands the hub a piece of output; returns once it is stored, so a job writing faster than
    /// the hub stores waits on its pipe. `shown`: it went through `show` first.
    func receive(_ output: OutputPiece, shown: Bool) async
    /// Output the hub may show attached clients at once, before `receive(_:shown:)` brings it to
    /// be stored. Called on the thread that read it, so it must not wait.
    func show(job: JobID, _ stream: OutputStreamKind, offset: Int, bytes: [UInt8])
}

/// A worker that runs inside the hub's process: the hub's own slots. The hub starts it after
/// recovery and drains it on shutdown; composition (which executor, which user) is the caller's.
public protocol InProcessWorker: Sendable {
    /// Says hello through `hub`, then runs what `link` brings until the hub finishes it.
    func serve(hub: any HubInbox, link: InProcessLink) async
    /// Takes no new jobs, gives running ones the grace period, kills the rest, and returns once
    /// every end was handed to the hub.
    func drain() async
}

/// The hub's messages to its own slots, in the order sent. A keystroke for a running process is
/// carried out by the sender, on its own thread, when nothing sent before it still waits: handing
/// it to the worker's task first woke another thread, about 40 µs of every echo on this VM.
public final class InProcessLink: Sendable {
    /// What the worker has not carried out yet, in order.
    public let messages: AsyncStream<HubMessage>
    private let queue: AsyncStream<HubMessage>.Continuation
    private let state = Mutex<State>(State())

    private struct State {
        /// Sent through `messages` and not yet `handled()`.
        var waiting = 0
        var carryOut: (@Sendable (HubMessage) -> Bool)?
    }

    public init() {
        (messages, queue) = AsyncStream.makeStream(of: HubMessage.self)
    }

    /// Carries `message` out at once when the worker can and nothing waits before it; else queues it.
    public func send(_ message: HubMessage) {
        state.withLock { state in
            if state.waiting == 0, let carryOut = state.carryOut, carryOut(message) { return }
            state.waiting += 1
            queue.yield(message)
        }
    }

    /// Ends `messages`.
    public func finish() {
        queue.finish()
    }

    /// For the worker: how to carry a message out on the sender's thread (false: queue it).
    public func carryOut(with body: @escaping @Sendable (HubMessage) -> Bool) {
        state.withLock { $0.carryOut = body }
    }

    /// For the worker, once it has carried out a message from `messages`.
    public func handled() {
        state.withLock { $0.waiting -= 1 }
    }
}
