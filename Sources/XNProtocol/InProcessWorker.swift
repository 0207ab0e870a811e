/// The hub as a worker in its own process reaches it: the same messages a remote worker sends,
/// as plain values (no socket, no JSON).
public protocol HubInbox: Sendable {
    /// Hands the hub a message; returns once the hub has handled it.
    func receive(_ message: WorkerMessage) async
    /// Hands the hub a piece of output; returns once it is stored, so a job writing faster than
    /// the hub stores waits on its pipe.
    func receive(_ output: OutputPiece) async
}

/// A worker that runs inside the hub's process: the hub's own slots. The hub starts it after
/// recovery and drains it on shutdown; composition (which executor, which user) is the caller's.
public protocol InProcessWorker: Sendable {
    /// Says hello through `hub`, then runs what `messages` brings until `messages` ends.
    func serve(hub: any HubInbox, messages: AsyncStream<HubMessage>) async
    /// Takes no new jobs, gives running ones the grace period, kills the rest, and returns once
    /// every end was handed to the hub.
    func drain() async
}
