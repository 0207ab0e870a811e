import Foundation
import Logging
import Synchronization
import XNExec
import XNProtocol

/// Runs the attempts a hub assigns through a `JobExecutor`: starts each process, hands its output
/// and its end to an `AttemptReporter`, and carries out what the hub asks of it (cancel, kill,
/// signal, input, resize). The one place a job becomes a process, for the hub's own slots and for
/// every remote worker alike.
///
///     assign ──▶ accepted ──▶ started ──▶ output … ──▶ ended (reported once)
///                    │            │
///                    └─ stop ─────┴──▶ terminate (SIGTERM, SIGKILL after the kill grace)
///
/// A stop (cancel, timeout, drain, kill, output that cannot be kept) is recorded once, first
/// reason wins, and travels with the end as its `StopReason`.
///
/// - Important: Run it (`run()`) for as long as it takes jobs; every attempt is a child task of
///   that call. `finish()` ends it once no attempt is left.
actor JobRunner {
    let configuration: RunnerConfiguration
    /// What every job's environment starts from (its spec's `env` goes on top).
    let jobEnvironment: [String: String]
    let executor: any JobExecutor
    let reporter: any AttemptReporter
    let logger: Logger
    private var attempts: [AttemptToken: Attempt] = [:]
    private(set) var draining = false
    private let launches: AsyncStream<AttemptToken>
    private let launchQueue: AsyncStream<AttemptToken>.Continuation
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    /// Running processes that take input from `deliverNow`: each has had its early input.
    private let liveProcesses = Mutex<[AttemptToken: any RunningProcess]>([:])

    /// One attempt on this runner.
    struct Attempt {
        let assignment: Assignment
        /// Set by the first stop; decides what the end reports.
        var stop: StopReason?
        /// Present once the process runs.
        var process: (any RunningProcess)?
        /// Terminates the process, started by the first stop once the process runs.
        var terminator: Task<Void, Never>?
        /// Stops the attempt when its spec's timeout passes; cancelled at its end.
        var timer: Task<Void, Never>?
        /// Input that came before the process existed, delivered once it does.
        var earlyInput: [HubMessage] = []
        var earlyInputBytes = 0
        /// The process ended: messages for it are ignored from now on.
        var ended = false
    }

    /// Input held for a process that does not exist yet, at most.
    static let earlyInputLimit = 1 << 20

    init(configuration: RunnerConfiguration, executor: any JobExecutor, reporter: any AttemptReporter, logger: Logger) {
        self.configuration = configuration
        jobEnvironment = JobEnvironment.base(
            runner: configuration.environment, identity: configuration.jobIdentity,
            passing: configuration.passEnvironment)
        self.executor = executor
        self.reporter = reporter
        self.logger = logger
        (launches, launchQueue) = AsyncStream.makeStream(of: AttemptToken.self)
    }

    /// Runs attempts as they are assigned, until `finish()`.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await token in launches {
                group.addTask { await self.execute(token) }
            }
        }
    }

    /// Ends `run()` once the attempts under way have ended.
    func finish() {
        launchQueue.finish()
    }

    // MARK: - Messages from the hub

    /// Carries out a hub message about a process; link-level messages (welcome, acks) are the
    /// caller's and are ignored here.
    func handle(_ message: HubMessage) async {
        switch message {
        case .assign(let assignment):
            await accept(assignment)
        case .cancel(let token):
            stop(token, .canceled)
        case .kill(let token, let reason):
            guard attempts[token] != nil else { return }
            logger.warning("hub says: \(reason) (attempt \(token))")
            stop(token, .superseded)
        case .signal(let token, let signal):
            guard SignalName.numbers.values.contains(signal) else { return }
            attempts[token]?.process?.signal(signal)
        case .input(let token, _), .closeInput(let token), .resize(let token, _):
            guard var attempt = attempts[token], !attempt.ended else { return }
            if let process = attempt.process {
                Self.deliver(message, to: process)
            } else if attempt.earlyInputBytes < Self.earlyInputLimit {
                attempt.earlyInput.append(message)
                if case .input(_, let bytes) = message { attempt.earlyInputBytes += bytes.count }
                attempts[token] = attempt
            }
        case .welcome, .refused, .ack, .forget:
            break
        }
    }

    private func accept(_ assignment: Assignment) async {
        let token = assignment.attempt
        guard attempts[token] == nil else { return }
        guard !draining else {
            // It never ran: the hub queues it again.
            await reporter.ended(
                token, job: assignment.job,
                AttemptEnd(.notStarted("\(configuration.description) is shutting down"), stop: .shutdown))
            return
        }
        attempts[token] = Attempt(assignment: assignment)
        launchQueue.yield(token)
    }

    /// Records why an attempt must stop (the first reason wins) and terminates its process once it
    /// runs.
    func stop(_ token: AttemptToken, _ reason: StopReason) {
        guard var attempt = attempts[token], !attempt.ended else { return }
        if attempt.stop == nil { attempt.stop = reason }
        startTerminator(&attempt)
        attempts[token] = attempt
    }

    /// Terminates a stopped attempt's process, once: its end waits for this task.
    private func startTerminator(_ attempt: inout Attempt) {
        guard attempt.stop != nil, attempt.terminator == nil, let process = attempt.process else { return }
        let grace = configuration.killGrace
        attempt.terminator = Task { _ = await process.terminate(grace: grace) }
    }

    /// Carries out input, a close of input or a resize for a running process at once, on the
    /// caller's thread, without waiting for the actor; false when the message must go through
    /// `handle` (another message, or no process yet). The caller keeps the order: it calls this
    /// only once everything it sent before was handled.
    nonisolated func deliverNow(_ message: HubMessage) -> Bool {
        switch message {
        case .input(let token, _), .closeInput(let token), .resize(let token, _):
            guard let process = liveProcesses.withLock({ $0[token] }) else { return false }
            Self.deliver(message, to: process)
            return true
        default:
            return false
        }
    }

    /// Input and resizes for a process; what fails here (input closed, buffer full) is dropped:
    /// the hub checked what it could.
    private static func deliver(_ message: HubMessage, to process: any RunningProcess) {
        switch message {
        case .input(_, let bytes): try? process.send(bytes)
        case .closeInput: process.closeInput()
        case .resize(_, let size):
            try? process.resize(TerminalSize(rows: UInt16(clamping: size.rows), columns: UInt16(clamping: size.cols)))
        default: break
        }
    }

    // MARK: - Drain

    /// Takes no new jobs, lets running ones finish within `drainGrace`, stops the rest, and
    /// returns once every attempt's end was reported.
    func drain() async {
        draining = true
        guard !attempts.isEmpty else { return }
        logger.info("draining: \(attempts.count) job(s) running")
        await waitUntilIdle(timeout: configuration.drainGrace)
        for token in attempts.keys { stop(token, .shutdown) }
        await waitUntilIdle(timeout: configuration.killGrace + .seconds(10))
    }

    private func waitUntilIdle(timeout: Duration) async {
        guard !attempts.isEmpty else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.parkUntilIdle() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            self.wakeIdleWaiters()
        }
    }

    private func parkUntilIdle() async {
        guard !attempts.isEmpty else { return }
        await withCheckedContinuation { idleWaiters.append($0) }
    }

    private func wakeIdleWaiters() {
        let waiters = idleWaiters
        idleWaiters = []
        waiters.forEach { $0.resume() }
    }

    // MARK: - One attempt

    /// Runs one attempt from spawn to its reported end.
    private nonisolated func execute(_ token: AttemptToken) async {
        guard let assignment = await attempts[token]?.assignment else { return }
        let end = await run(assignment)
        await reporter.ended(token, job: assignment.job, end)
        await forget(token)
    }

    private nonisolated func run(_ assignment: Assignment) async -> AttemptEnd {
        let token = assignment.attempt
        do {
            try await reporter.accepted(token, job: assignment.job)
        } catch {
            return AttemptEnd(.notStarted("\(error)"), stop: await stopReason(token))
        }
        if let stop = await stopReason(token) {
            return AttemptEnd(.notStarted("stopped before it started"), stop: stop)
        }
        var request = ProcessRequest(assignment.spec, outputLimit: assignment.outputLimit)
        request.identity = configuration.jobIdentity
        request.baseEnvironment = jobEnvironment
        request.limits = configuration.jobLimits.tightened(by: assignment.spec.limits)
        if assignment.spec.isolate || configuration.isolatesJobs {
            request.isolation = Isolation(network: assignment.spec.network)
        }
        request.tag = assignment.job.rawValue
        // Shown at once where someone may type: an echo then reaches an attached client without
        // waiting for the attempt's task to wake and the scheduler to take it. Other output is
        // shown as it is stored, which keeps the reactor's thread (every job's pipes) to reading:
        // a 1 GiB job reached an attached client no faster when shown sooner.
        if assignment.spec.keepsInputOpen { request.showOutput = reporter.showOutput(token, job: assignment.job) }
        let process: any RunningProcess
        do {
            process = try executor.start(request)
        } catch {
            return AttemptEnd(.notStarted(error.description), stop: await stopReason(token))
        }
        guard await running(token, process) else {
            _ = await process.terminate(grace: configuration.killGrace)
            return AttemptEnd(.notStarted("forgotten"), stop: .superseded)
        }
        await reporter.started(token, pid: process.pid)
        // No task of its own waits for the end, a stop or the timeout: a short job's end then
        // wakes one task, this one.
        let outputExecutor = assignment.spec.keepsInputOpen ? await reporter.outputExecutor() : nil
        let result = await withTaskCancellationHandler {
            if let outputExecutor {
                await withTaskExecutorPreference(outputExecutor) {
                    await report(process.output, of: token, shown: request.showOutput != nil)
                }
            } else {
                await report(process.output, of: token, shown: request.showOutput != nil)
            }
            return await process.result()
        } onCancel: {
            // A cancelled runner (not a drain) must not leave the process behind.
            process.signal(SIGKILL)
        }
        let (stop, terminator) = await ended(token)
        await terminator?.value
        let termination: AttemptEnd.Termination =
            switch result.termination {
            case .exited(let code): .exited(code)
            case .signaled(let signal): .signaled(signal)
            }
        let usage = result.usage.map {
            JobUsage(
                cpuUserSeconds: $0.userSeconds, cpuSystemSeconds: $0.systemSeconds, peakMemoryBytes: $0.peakMemoryBytes)
        }
        return AttemptEnd(
            termination, stop: stop, stdoutBytes: result.stdoutBytes, stderrBytes: result.stderrBytes,
            usage: usage, outOfMemoryLimit: result.usage?.outOfMemory == true ? request.limits.addressSpaceBytes : nil)
    }

    /// Hands every chunk of output to the reporter at its offset. Output that cannot be kept stops
    /// the job; the rest of it is read and dropped so the process can end.
    private nonisolated func report(_ output: ProcessOutput, of token: AttemptToken, shown: Bool) async {
        var offsets: [OutputStreamKind: Int] = [:]
        var failed = false
        for await chunk in output {
            let offset = offsets[chunk.stream, default: 0]
            offsets[chunk.stream] = offset + chunk.bytes.count
            guard !failed else { continue }
            do {
                try await reporter.output(token, chunk.stream, offset: offset, bytes: chunk.bytes, shown: shown)
            } catch {
                failed = true
                logger.error("attempt \(token): \(error)")
                await stop(token, .outputLost("\(error)"))
            }
        }
    }

    private func stopReason(_ token: AttemptToken) -> StopReason? {
        attempts[token]?.stop
    }

    /// The process exists: input typed before goes in first, in order; a stop that came early
    /// takes effect now, and the spec's timeout starts. False when the attempt is gone.
    private func running(_ token: AttemptToken, _ process: any RunningProcess) -> Bool {
        guard var attempt = attempts[token] else { return false }
        attempt.process = process
        for message in attempt.earlyInput { Self.deliver(message, to: process) }
        attempt.earlyInput = []
        attempt.earlyInputBytes = 0
        if let timeout = attempt.assignment.spec.timeout {
            attempt.timer = Task {
                guard (try? await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))) != nil else { return }
                self.stop(token, .timedOut(seconds: timeout))
            }
        }
        startTerminator(&attempt)
        attempts[token] = attempt
        liveProcesses.withLock { $0[token] = process }
        return true
    }

    /// The process ended: returns why it was stopped, if it was, and the terminator to wait for.
    private func ended(_ token: AttemptToken) -> (StopReason?, Task<Void, Never>?) {
        liveProcesses.withLock { $0[token] = nil }
        guard var attempt = attempts[token] else { return (nil, nil) }
        attempt.ended = true
        attempt.timer?.cancel()
        attempt.timer = nil
        attempts[token] = attempt
        return (attempt.stop, attempt.terminator)
    }

    private func forget(_ token: AttemptToken) {
        attempts[token] = nil
        if attempts.isEmpty { wakeIdleWaiters() }
    }
}
