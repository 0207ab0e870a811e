import Foundation
public import Logging
import UnixSignals
public import XNExec
import XNProtocol

/// `xn worker`: runs jobs a hub assigns, keeps them running while the hub is away, and reports
/// every byte of output and every end exactly once, resuming from the hub's acknowledgements.
///
///     assigned ──▶ running ──▶ ended ──▶ (hub stored the end: forget) ──▶ gone
///                      │ output is held (memory, then the spool) and sent from the hub's last ack
///
/// The processes are the `JobRunner`'s, as on the hub's own slots; the `RemoteLink` carries their
/// output and ends to the hub.
///
/// - Important: `run()` until `drain()` (or a refusal) ends it. It is not stopped through
///   ServiceLifecycle's graceful shutdown on purpose: that would also close its WebSocket
///   client, and a draining worker must keep reporting to the hub.
public final class Worker: Sendable {
    let configuration: WorkerConfiguration
    let logger: Logger
    let link: RemoteLink
    let runner: JobRunner

    public init(configuration: WorkerConfiguration, executor: any JobExecutor, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        link = RemoteLink(configuration: configuration)
        runner = JobRunner(configuration: configuration.runner, executor: executor, reporter: link, logger: logger)
    }

    public func run() async throws {
        // Spooled output is the jobs' own: only the worker's user may read it.
        try FileManager.default.createDirectory(
            atPath: configuration.spoolDirectory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        await withDiscardingTaskGroup { group in
            group.addTask { await self.stayConnected() }
            await runner.run()
        }
        if let fatal = await link.fatal { throw WorkerError(fatal) }
    }

    /// Stops taking jobs, lets running ones finish within the grace, kills the rest, and waits
    /// (briefly) until the hub has their ends.
    public func drain() async {
        guard await link.beginDraining() else { return }
        await runner.drain()
        await link.waitUntilDelivered(timeout: configuration.runner.killGrace + .seconds(5))
        await link.stop()
        await runner.finish()
    }

    /// A message from the hub: delivery state first, then the process. Input for a running
    /// process (delivery keeps nothing of it) goes straight in, on the connection's thread; the
    /// messages before it were handled, since each is awaited.
    func handle(_ message: HubMessage) async {
        if runner.deliverNow(message) { return }
        if await link.handle(message) { await runner.handle(message) }
    }

    func refusedForGood(_ reason: String) async {
        await link.refusedForGood(reason)
        await runner.finish()
    }
}

/// Runs a worker until SIGTERM or SIGINT, then drains it.
public func runWorker(configuration: WorkerConfiguration, executor: any JobExecutor, logger: Logger) async throws {
    let worker = Worker(configuration: configuration, executor: executor, logger: logger)
    let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await worker.run() }
        group.addTask {
            for await _ in signals {
                await worker.drain()
                return
            }
        }
        try await group.next()
        group.cancelAll()
    }
}
