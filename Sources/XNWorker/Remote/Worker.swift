import Foundation
public import Logging
import NIOCore
import UnixSignals
public import XNExec
import XNProtocol

/// `xn worker`: runs jobs a hub assigns, keeps them running while the hub is away, and reports
/// every byte of output and every end exactly once, resuming from the hub's acknowledgements.
///
///     assigned ──▶ running ──▶ ended ──▶ (hub stored the end: forget) ──▶ gone
///                      │ output is spooled to disk and sent from the last acknowledged offset
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

/// The delivery side of a remote worker: the spool, what was sent on the current connection,
/// what the hub acknowledged, the ends not yet stored. The runner reports here.
actor RemoteLink: AttemptReporter {
    let configuration: WorkerConfiguration
    var deliveries: [AttemptToken: Delivery] = [:]
    /// The live connection, if any: its id and the wake-up for its writer.
    var connection: (id: UInt64, wake: AsyncStream<Void>.Continuation)?
    var connectionCount: UInt64 = 0
    /// Control messages waiting for the writer, in order.
    var control: [WorkerMessage] = []
    /// Output frames sent from memory, waiting for the writer of the current connection, in order.
    var express: [ByteBuffer] = []
    var draining = false
    var stopped = false
    /// Set when the hub refused this worker for good (wrong protocol).
    var fatal: String?

    /// One attempt's output and end on their way to the hub.
    struct Delivery {
        let job: JobID
        var spool: [OutputStreamKind: SpoolFile] = [:]
        /// Bytes spooled per stream.
        var written: [OutputStreamKind: Int] = [:]
        /// Bytes sent on the current connection (from the hub's ack); empty until the hub says.
        var sent: [OutputStreamKind: Int] = [:]
        /// Bytes the hub has stored, as its acks say.
        var acked: [OutputStreamKind: Int] = [:]
        var end: AttemptEnd?
        var endSent = false
        /// The hub no longer wants this attempt: report nothing of it.
        var forget = false
    }

    init(configuration: WorkerConfiguration) {
        self.configuration = configuration
    }

    /// Starts draining; false when it already was.
    func beginDraining() -> Bool {
        guard !draining else { return false }
        draining = true
        sendControl(.draining)
        return true
    }

    /// Waits until the hub has every end (or `timeout` passes).
    func waitUntilDelivered(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while !deliveries.values.allSatisfy(\.forget) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    func stop() {
        stopped = true
        connection?.wake.finish()
    }

    // MARK: - Messages from the hub

    /// Takes what concerns delivery; true when the runner must see the message too.
    func handle(_ message: HubMessage) -> Bool {
        switch message {
        case .ack(let ack):
            guard var delivery = deliveries[ack.attempt] else { return false }
            let acked: [OutputStreamKind: Int] = [.stdout: ack.stdout, .stderr: ack.stderr]
            if delivery.sent.isEmpty {
                // The first ack on a new connection says where the hub's copy ends: resume there.
                delivery.sent = acked
                delivery.acked = acked
                delivery.endSent = false
            } else {
                delivery.acked.merge(acked, uniquingKeysWith: max)
            }
            deliveries[ack.attempt] = delivery
            wake()
            return false
        case .forget(let token):
            forget(token)
            return false
        case .kill(let token, _):
            deliveries[token]?.forget = true
            return true
        case .welcome, .refused:
            return false
        default:
            return true
        }
    }

    /// The hub stored the attempt's end (or moved past it): its spool goes.
    private func forget(_ token: AttemptToken) {
        guard var delivery = deliveries[token] else { return }
        if delivery.end != nil {
            delivery.spool.values.forEach { $0.remove() }
            deliveries[token] = nil
        } else {
            delivery.forget = true
            deliveries[token] = delivery
        }
    }

    // MARK: - Reports from the runner

    func accepted(_ token: AttemptToken, job: JobID) throws {
        var delivery = Delivery(job: job)
        do {
            for stream in OutputStreamKind.allCases {
                delivery.spool[stream] = try SpoolFile(
                    path: "\(configuration.spoolDirectory)/\(token).\(stream.name)")
            }
        } catch {
            delivery.spool.values.forEach { $0.remove() }
            throw WorkerError("worker \(configuration.name) cannot spool output: \(error)")
        }
        delivery.sent = connection == nil ? [:] : [.stdout: 0, .stderr: 0]
        deliveries[token] = delivery
    }

    func started(_ attempt: AttemptToken, pid: Int32) {
        sendControl(.started(AttemptStarted(attempt: attempt, pid: pid)))
    }

    /// Spools output on NIO's blocking-I/O threads, off this actor, then makes it sendable. A
    /// small piece with nothing before it left to send goes to the writer from memory at once,
    /// while it is being spooled: a keystroke's echo does not wait for the disk and back.
    nonisolated func output(
        _ attempt: AttemptToken, _ stream: OutputStreamKind, offset: Int, bytes: [UInt8]
    )
        async throws
    {
        guard let file = await spool(of: attempt, stream, sendingAt: offset, bytes) else { return }
        try await file.append(bytes, at: offset)
        await wrote(attempt, stream, upTo: offset + bytes.count)
    }

    /// The stream's spool file; first, when the piece is small, the connection has sent all of
    /// the stream before it and the window has room, queues the piece to be sent from memory.
    /// The spool still gets it: a reconnect resends from the hub's ack, out of the spool.
    private func spool(
        of token: AttemptToken, _ stream: OutputStreamKind, sendingAt offset: Int, _ bytes: [UInt8]
    ) -> SpoolFile? {
        guard let delivery = deliveries[token], let file = delivery.spool[stream] else { return nil }
        if bytes.count <= Self.expressBytes, connection != nil, !delivery.forget, delivery.sent[stream] == offset,
            (delivery.written[stream] ?? 0) == offset, unacknowledged + bytes.count <= Self.window
        {
            deliveries[token]?.sent[stream] = offset + bytes.count
            var frame = ByteBufferAllocator().buffer(capacity: OutputFrame.headerSize + bytes.count)
            frame.writeBytes(OutputFrame.header(stream: stream, attempt: token, offset: offset))
            frame.writeBytes(bytes)
            express.append(frame)
            wake()
        }
        return file
    }

    private func wrote(_ token: AttemptToken, _ stream: OutputStreamKind, upTo offset: Int) {
        deliveries[token]?.written[stream] = offset
        wake()
    }

    func ended(_ token: AttemptToken, job: JobID, _ end: AttemptEnd) {
        var delivery = deliveries[token] ?? Delivery(job: job)
        if deliveries[token] == nil {
            // Never accepted (it came while draining): only its end travels.
            delivery.sent = connection == nil ? [:] : [.stdout: 0, .stderr: 0]
        }
        if delivery.forget {
            delivery.spool.values.forEach { $0.remove() }
            deliveries[token] = nil
            return
        }
        delivery.end = end
        deliveries[token] = delivery
        wake()
    }

    // MARK: - Outgoing

    func sendControl(_ message: WorkerMessage) {
        control.append(message)
        wake()
    }

    func wake() {
        connection?.wake.yield()
    }

    /// What the writer sends next on connection `id`: control first, then output while less than
    /// `window` bytes wait for the hub's ack, then ends.
    func nextToSend(on id: UInt64) -> Outgoing? {
        guard connection?.id == id else { return nil }
        if !control.isEmpty { return .control(control.removeFirst()) }
        if !express.isEmpty { return .frame(express.removeFirst()) }
        let unacknowledged = unacknowledged
        for (token, delivery) in deliveries.sorted(by: { $0.key < $1.key })
        where !delivery.forget && unacknowledged < Self.window {
            for stream in OutputStreamKind.allCases {
                guard let sent = delivery.sent[stream], let file = delivery.spool[stream] else { continue }
                let written = delivery.written[stream] ?? 0
                if sent < written {
                    let count = min(written - sent, Self.frameBytes)
                    deliveries[token]?.sent[stream] = sent + count
                    return .output(token: token, stream: stream, offset: sent, count: count, file: file)
                }
            }
        }
        for (token, delivery) in deliveries where delivery.end != nil && !delivery.endSent && !delivery.forget {
            // The end goes after the last byte of output, never before it.
            guard !delivery.sent.isEmpty,
                OutputStreamKind.allCases.allSatisfy({ (delivery.sent[$0] ?? 0) == (delivery.written[$0] ?? 0) })
            else { continue }
            deliveries[token]?.endSent = true
            return .control(.ended(AttemptEnded(attempt: token, end: delivery.end!)))
        }
        return nil
    }

    /// Output bytes sent on this connection and not yet acknowledged.
    private var unacknowledged: Int {
        deliveries.values.reduce(0) { total, delivery in
            total + delivery.sent.reduce(0) { $0 + max(0, $1.value - (delivery.acked[$1.key] ?? 0)) }
        }
    }

    /// Output bytes per frame: large frames cost less per byte (the hub accepts up to 1 MiB), but
    /// the hub reads several ahead while it stores one. A 1 GiB job: 1 MiB frames were stored at
    /// 414-458 MB/s with the hub peaking at 84-88 MiB, 512 KiB ones at 380-440 MB/s and 69-74 MiB.
    static let frameBytes = (512 << 10) - OutputFrame.headerSize

    /// The largest piece sent from memory ahead of its spooling: output that trickles. A job
    /// writing fast hands over larger chunks, sent from the spool (letting those go from memory
    /// too moved a 1 GiB ingest by nothing measurable).
    static let expressBytes = 64 << 10

    /// Output bytes sent but not yet acknowledged, at most. Without a limit the writer hands
    /// frames to the event loop faster than the socket takes them: memory grows and heartbeats
    /// queue behind the output until the hub declares the worker lost.
    static let window = 8 << 20

    enum Outgoing: Sendable {
        case control(WorkerMessage)
        /// A whole output frame, from memory.
        case frame(ByteBuffer)
        case output(token: AttemptToken, stream: OutputStreamKind, offset: Int, count: Int, file: SpoolFile)
    }

    /// The hello for a new connection: every attempt the hub may not have seen end.
    func hello() -> WorkerHello {
        WorkerHello(
            name: configuration.name, labels: configuration.labels, slots: configuration.slots,
            version: configuration.version,
            attempts: deliveries.filter { !$0.value.forget }.map {
                HeldAttempt(attempt: $0.key, job: $0.value.job, end: $0.value.end)
            }.sorted { $0.attempt < $1.attempt }, inputFrames: true)
    }

    /// A connection was made: output waits for the hub's ack of where to resume.
    func connected(_ wake: AsyncStream<Void>.Continuation) -> UInt64 {
        connectionCount += 1
        connection = (connectionCount, wake)
        express = []
        for token in deliveries.keys {
            deliveries[token]?.sent = [:]
            deliveries[token]?.endSent = false
        }
        if draining { control.append(.draining) }
        return connectionCount
    }

    func disconnected(_ id: UInt64) {
        guard connection?.id == id else { return }
        connection?.wake.finish()
        connection = nil
        express = []
        control.removeAll { $0 == .heartbeat }
    }

    func refusedForGood(_ reason: String) {
        fatal = reason
        stopped = true
    }

    var isStopped: Bool { stopped }
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
