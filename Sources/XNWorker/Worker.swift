import Foundation
public import Logging
import UnixSignals
public import XNExec
import XNProtocol

/// `xn worker`: runs jobs a hub assigns, keeps them running while the hub is away, and reports
/// every byte of output and every end exactly once, resuming from the hub's acknowledgements.
///
///     assigned ──▶ running ──▶ ended ──▶ (hub acknowledges the end) ──▶ forgotten
///                      │ output is spooled to disk and sent from the last acknowledged offset
///
/// - Important: `run()` until `drain()` (or a refusal) ends it; every job task is a child of that
///   call. It is not stopped through ServiceLifecycle's graceful shutdown on purpose: that would
///   also close its WebSocket client, and a draining worker must keep reporting to the hub.
public actor Worker {
    let configuration: WorkerConfiguration
    let executor: any JobExecutor
    let logger: Logger
    var attempts: [UInt64: Attempt] = [:]
    /// The live connection, if any: its id and the wake-up for its writer.
    var connection: (id: UInt64, wake: AsyncStream<Void>.Continuation)?
    var connectionCount: UInt64 = 0
    /// Control messages waiting for the writer, in order.
    var control: [WireMessage] = []
    var draining = false
    var stopped = false
    /// Set when the hub refused this worker for good (wrong protocol).
    var fatal: String?
    private let launches: AsyncStream<UInt64>
    private let launchQueue: AsyncStream<UInt64>.Continuation
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    public init(configuration: WorkerConfiguration, executor: any JobExecutor, logger: Logger) {
        self.configuration = configuration
        self.executor = executor
        self.logger = logger
        (launches, launchQueue) = AsyncStream.makeStream(of: UInt64.self)
    }

    public func run() async throws {
        try FileManager.default.createDirectory(
            atPath: configuration.spoolDirectory, withIntermediateDirectories: true)
        await withDiscardingTaskGroup { group in
            group.addTask { await self.stayConnected() }
            for await token in launches {
                group.addTask { await self.execute(token) }
            }
        }
        if let fatal { throw WorkerError(fatal) }
    }

    /// Stops taking jobs, lets running ones finish within the grace, kills the rest, and waits
    /// (briefly) until the hub has their ends.
    public func drain() async {
        guard !draining else { return }
        draining = true
        sendControl(WireMessage(.draining))
        logger.info("draining: \(attempts.count) job(s) running")
        await waitUntil(timeout: configuration.drainGrace) { attempts.values.allSatisfy { $0.end != nil } }
        for attempt in attempts.values where attempt.end == nil { attempt.stops.yield(.drained) }
        await waitUntil(timeout: configuration.killGrace + .seconds(5)) { attempts.isEmpty }
        stopped = true
        launchQueue.finish()
        connection?.wake.finish()
    }

    /// Polls a condition on the actor until it holds or `timeout` passes.
    private func waitUntil(timeout: Duration, _ condition: () -> Bool) async {
        let deadline = ContinuousClock.now + timeout
        while !condition() && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: - Messages from the hub

    func handle(_ message: WireMessage) {
        switch message.type {
        case .assign:
            guard let token = message.attempt.flatMap(AttemptToken.parse), let job = message.job,
                let spec = message.spec
            else { return }
            accept(token: token, job: job, spec: spec, outputLimit: message.stdout ?? (16 << 20))
        case .ack:
            guard let token = message.attempt.flatMap(AttemptToken.parse), var attempt = attempts[token] else { return }
            if message.ended == true {
                if attempt.end != nil {
                    attempt.spool.values.forEach { $0.remove() }
                    attempts[token] = nil
                } else {
                    attempt.forget = true
                    attempts[token] = attempt
                }
                return
            }
            let acked: [OutputStreamKind: Int] = [.stdout: message.stdout ?? 0, .stderr: message.stderr ?? 0]
            if attempt.sent[.stdout] == nil {
                // The first ack on a new connection says where the hub's copy ends: resume there.
                attempt.sent = acked
                attempt.acked = acked
                attempt.endSent = false
            } else {
                attempt.acked.merge(acked, uniquingKeysWith: max)
            }
            attempts[token] = attempt
            wake()
        case .cancel:
            guard let token = message.attempt.flatMap(AttemptToken.parse) else { return }
            attempts[token]?.stops.yield(.canceled)
        case .signal:
            guard let token = message.attempt.flatMap(AttemptToken.parse), let signal = message.signal,
                SignalName.numbers.values.contains(signal)
            else { return }
            attempts[token]?.process?.signal(signal)
        case .input:
            guard let token = message.attempt.flatMap(AttemptToken.parse), attempts[token] != nil else { return }
            if let process = attempts[token]?.process {
                deliver(message, to: process)
            } else if (attempts[token]?.earlyInput.count ?? 0) < 4096 {
                attempts[token]?.earlyInput.append(message)
            }
        case .kill:
            guard let token = message.attempt.flatMap(AttemptToken.parse), attempts[token] != nil else { return }
            logger.warning("hub says: \(message.reason ?? "kill") (attempt \(AttemptToken.format(token)))")
            attempts[token]?.forget = true
            attempts[token]?.stops.yield(.killed)
        default:
            break
        }
    }

    private func accept(token: UInt64, job: String, spec: JobSpec, outputLimit: Int) {
        guard attempts[token] == nil else { return }
        let (stops, stopper) = AsyncStream.makeStream(of: StopReason.self)
        var attempt = Attempt(
            token: token, job: job, spec: spec, outputLimit: outputLimit, stops: stopper, stopSignals: stops)
        do {
            for stream in [OutputStreamKind.stdout, .stderr] {
                attempt.spool[stream] = try SpoolFile(
                    path: "\(configuration.spoolDirectory)/\(AttemptToken.format(token)).\(stream.rawValue)")
            }
        } catch {
            attempt.end = AttemptEnd(err: "worker \(configuration.name) cannot spool output: \(error)")
            attempts[token] = attempt
            wake()
            return
        }
        attempt.sent = connection == nil ? [:] : [.stdout: 0, .stderr: 0]
        attempts[token] = attempt
        if draining {
            attempts[token]?.end = AttemptEnd(err: "worker \(configuration.name) is shutting down")
            wake()
            return
        }
        launchQueue.yield(token)
    }

    // MARK: - Outgoing

    func sendControl(_ message: WireMessage) {
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
        let unacknowledged = attempts.values.reduce(0) { total, attempt in
            total + attempt.sent.reduce(0) { $0 + max(0, $1.value - (attempt.acked[$1.key] ?? 0)) }
        }
        for (token, attempt) in attempts.sorted(by: { $0.key < $1.key })
        where !attempt.forget && unacknowledged < Self.window {
            for stream in [OutputStreamKind.stdout, .stderr] {
                guard let sent = attempt.sent[stream], let file = attempt.spool[stream] else { continue }
                let written = attempt.written[stream] ?? 0
                if sent < written {
                    let count = min(written - sent, Self.frameBytes)
                    attempts[token]?.sent[stream] = sent + count
                    return .output(token: token, stream: stream, offset: sent, count: count, file: file)
                }
            }
        }
        for (token, attempt) in attempts where attempt.end != nil && !attempt.endSent && !attempt.forget {
            // The end goes after the last byte of output, never before it.
            guard attempt.sent[.stdout] != nil,
                OutputStreamKind.allCases.allSatisfy({ attempt.sent[$0] == (attempt.written[$0] ?? 0) })
            else { continue }
            attempts[token]?.endSent = true
            var ended = WireMessage(.ended)
            ended.attempt = AttemptToken.format(token)
            ended.end = attempt.end
            return .control(ended)
        }
        return nil
    }

    /// Output bytes per frame: large frames cost less per byte; the hub accepts up to 1 MiB.
    static let frameBytes = 256 << 10

    /// Output bytes sent but not yet acknowledged, at most. Without a limit the writer hands
    /// frames to the event loop faster than the socket takes them: memory grows and heartbeats
    /// queue behind the output until the hub declares the worker lost.
    static let window = 8 << 20

    enum Outgoing: Sendable {
        case control(WireMessage)
        case output(token: UInt64, stream: OutputStreamKind, offset: Int, count: Int, file: SpoolFile)
    }

    /// The hello for a new connection: every attempt the hub may not have seen end.
    func hello() -> WireMessage {
        var hello = WireMessage(.hello)
        hello.name = configuration.name
        hello.labels = configuration.labels
        hello.slots = configuration.slots
        hello.version = configuration.version
        hello.attempts = attempts.values.filter { !$0.forget }.map {
            AttemptReport(attempt: AttemptToken.format($0.token), job: $0.job, end: $0.end)
        }
        return hello
    }

    /// A connection was made: output waits for the hub's ack of where to resume.
    func connected(_ wake: AsyncStream<Void>.Continuation) -> UInt64 {
        connectionCount += 1
        connection = (connectionCount, wake)
        for token in attempts.keys {
            attempts[token]?.sent = [:]
            attempts[token]?.endSent = false
        }
        // Attempts the hub dropped while we were away get no ack; forget those that ended.
        if draining { control.append(WireMessage(.draining)) }
        return connectionCount
    }

    func disconnected(_ id: UInt64) {
        guard connection?.id == id else { return }
        connection?.wake.finish()
        connection = nil
        control.removeAll { $0.type == .heartbeat }
    }

    func refusedForGood(_ reason: String) {
        fatal = reason
        stopped = true
        launchQueue.finish()
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
