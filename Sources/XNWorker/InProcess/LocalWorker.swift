public import Logging
import Synchronization
public import XNExec
public import XNProtocol

/// The hub's own slots: a worker in the hub's process that speaks the same messages as a remote
/// one, as plain values over an in-process link. Its jobs run through the same `JobRunner`; its
/// output goes straight to the hub, which stores it before the next chunk is read, so there is
/// nothing to spool and nothing to resend.
public final class LocalWorker: InProcessWorker {
    let configuration: RunnerConfiguration
    let slots: Int
    let executor: any JobExecutor
    let logger: Logger
    private let runner = Mutex<JobRunner?>(nil)

    /// `configuration.name` should be `WireProtocol.inProcessWorkerName`, the name the hub reserves.
    public init(configuration: RunnerConfiguration, slots: Int, executor: any JobExecutor, logger: Logger) {
        self.configuration = configuration
        self.slots = slots
        self.executor = executor
        self.logger = logger
    }

    public func serve(hub: any HubInbox, link: InProcessLink) async {
        let runner = JobRunner(
            configuration: configuration, executor: executor, reporter: InboxReporter(hub: hub), logger: logger)
        self.runner.withLock { $0 = runner }
        link.carryOut { runner.deliverNow($0) }
        await hub.receive(.hello(WorkerHello(name: configuration.name, slots: slots, version: xnVersion)))
        await withDiscardingTaskGroup { group in
            group.addTask { await runner.run() }
            for await message in link.messages {
                await runner.handle(message)
                link.handled()
            }
            // The hub stopped: run() ends once the attempts under way have ended.
            await runner.finish()
        }
        // The runner reports to the hub, which holds this worker: let go of it, or neither (nor
        // the hub's store) is ever freed.
        self.runner.withLock { $0 = nil }
    }

    public func drain() async {
        guard let runner = runner.withLock({ $0 }) else { return }
        await runner.drain()
    }
}

/// Reports straight to the hub: no spool, no acknowledgements to wait for.
struct InboxReporter: AttemptReporter {
    let hub: any HubInbox

    func accepted(_ attempt: AttemptToken, job: JobID) async throws {}

    func started(_ attempt: AttemptToken, pid: Int32) async {
        await hub.receive(.started(AttemptStarted(attempt: attempt, pid: pid)))
    }

    func output(
        _ attempt: AttemptToken, _ stream: OutputStreamKind, offset: Int, bytes: [UInt8], shown: Bool
    ) async throws {
        await hub.receive(OutputPiece(attempt: attempt, stream: stream, offset: offset, bytes: bytes), shown: shown)
    }

    /// A keystroke's echo reaches an attached client from the reactor's thread, without first
    /// waking the attempt's task and the scheduler (tens of microseconds each on a VM).
    func showOutput(_ attempt: AttemptToken, job: JobID) -> ShowOutput? {
        { [hub] stream, offset, bytes in hub.show(job: job, stream, offset: offset, bytes: bytes) }
    }

    /// Shown output is on its way already; the rest is stored from the attempt's task.
    func outputExecutor() async -> (any TaskExecutor)? { nil }

    func ended(_ attempt: AttemptToken, job: JobID, _ end: AttemptEnd) async {
        await hub.receive(.ended(AttemptEnded(attempt: attempt, end: end)))
    }
}
