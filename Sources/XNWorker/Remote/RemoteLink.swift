import Foundation
import NIOCore
import XNExec
import XNProtocol

/// The delivery side of a remote worker: the output the hub has not stored yet, what was sent on
/// the current connection, the ends not yet stored. The runner reports here.
actor RemoteLink: AttemptReporter {
    let configuration: WorkerConfiguration
    var deliveries: [AttemptToken: Delivery] = [:]
    /// The live connection, if any: its id, the wake-up for its writer, and its event loop.
    var connection: (id: UInt64, wake: AsyncStream<Void>.Continuation, executor: any TaskExecutor)?
    var connectionCount: UInt64 = 0
    /// Control messages waiting for the writer, in order.
    var control: [WorkerMessage] = []
    /// Output bytes held in memory, over every attempt (at most about `memoryBudget`).
    var memoryBytes = 0
    /// Empty output frames past what the hub asked for, telling it those bytes are gone, in order.
    var gaps: [Outgoing] = []
    /// Outputs waiting for memory to free up (an ack), the hub to go away, or a heartbeat.
    var roomWaiters: [CheckedContinuation<Void, Never>] = []
    var draining = false
    var stopped = false
    /// Set when the hub refused this worker for good (wrong protocol).
    var fatal: String?

    /// One attempt's output and end on their way to the hub.
    struct Delivery {
        let job: JobID
        var held: [OutputStreamKind: HeldOutput] = [.stdout: HeldOutput(), .stderr: HeldOutput()]
        /// Spool files, made when output first has to leave memory.
        var spool: [OutputStreamKind: SpoolFile] = [:]
        /// Bytes sent on the current connection (from the hub's ack); empty until the hub says.
        var sent: [OutputStreamKind: Int] = [:]
        var end: AttemptEnd?
        var endSent = false
        /// The hub no longer wants this attempt: report nothing of it.
        var forget = false

        func written(_ stream: OutputStreamKind) -> Int { held[stream]?.written ?? 0 }
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
                // The first ack on a new connection says where the hub's copy ends: resume there,
                // or where what is held begins when the hub lost bytes it had acknowledged (it
                // then records the job's output as lost).
                for (stream, offset) in acked {
                    let heldFrom = delivery.held[stream]!.heldFrom
                    delivery.sent[stream] = max(offset, heldFrom)
                    if offset < heldFrom {
                        gaps.append(.memory(token: ack.attempt, stream: stream, offset: heldFrom, slices: []))
                    }
                }
                delivery.endSent = false
            }
            var freed = 0
            for (stream, offset) in acked { freed += delivery.held[stream]!.acknowledge(upTo: offset) }
            deliveries[ack.attempt] = delivery
            free(freed)
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

    /// The hub stored the attempt's end (or moved past it): what is held of it goes.
    private func forget(_ token: AttemptToken) {
        guard var delivery = deliveries[token] else { return }
        if delivery.end != nil {
            drop(token)
        } else {
            delivery.forget = true
            deliveries[token] = delivery
        }
    }

    // MARK: - Reports from the runner

    func accepted(_ token: AttemptToken, job: JobID) {
        var delivery = Delivery(job: job)
        delivery.sent = connection == nil ? [:] : [.stdout: 0, .stderr: 0]
        deliveries[token] = delivery
    }

    func started(_ attempt: AttemptToken, pid: Int32) {
        sendControl(.started(AttemptStarted(attempt: attempt, pid: pid)))
    }

    /// Holds output in memory and makes it sendable at once. Over the memory budget it returns
    /// only once there is room again: the hub acknowledged enough (a job writing faster than the
    /// hub stores waits on its pipe), or the hub is away or has taken nothing for `stallLimit`,
    /// and this stream's memory went to its spool file (the job runs on while the hub is away).
    nonisolated func output(
        _ attempt: AttemptToken, _ stream: OutputStreamKind, offset: Int, bytes: [UInt8], shown: Bool
    )
        async throws
    {
        guard await hold(attempt, stream, bytes) else { return }
        let stalled = ContinuousClock.now + Self.stallLimit
        while true {
            switch try await makeRoom(attempt, stream, stalledAt: stalled) {
            case .done:
                return
            case .waited:
                continue
            case .spill(let file, let offset, let chunks):
                do {
                    try await file.append(chunks, at: offset)
                } catch {
                    await spillFailed(attempt, stream)
                    throw error
                }
                await spilled(attempt, stream, upTo: offset + chunks.reduce(0) { $0 + $1.count })
                return
            }
        }
    }

    /// Output reaches the hub through `output` alone: shown by the hub as it arrives.
    nonisolated func showOutput(_ attempt: AttemptToken, job: JobID) -> ShowOutput? { nil }

    /// The connection's event loop, where the writer runs: an echo read by the reactor is then
    /// held and sent by the thread the reactor wakes, instead of a pool thread waking the writer.
    func outputExecutor() -> (any TaskExecutor)? { connection?.executor }

    /// Appends to the stream's memory; false when the attempt's output is no longer wanted.
    private func hold(_ token: AttemptToken, _ stream: OutputStreamKind, _ bytes: [UInt8]) -> Bool {
        guard deliveries[token]?.forget == false else { return false }
        deliveries[token]!.held[stream]!.append(bytes)
        memoryBytes += bytes.count
        wake()
        return true
    }

    enum RoomStep {
        case done
        case waited
        /// Write these bytes of memory to the spool file at `offset`, then call `spilled`.
        case spill(SpoolFile, offset: Int, chunks: [[UInt8]])
    }

    /// One step towards memory within budget for `stream` of `token`.
    private func makeRoom(
        _ token: AttemptToken, _ stream: OutputStreamKind, stalledAt: ContinuousClock.Instant
    ) async throws -> RoomStep {
        guard memoryBytes > Self.memoryBudget, let delivery = deliveries[token], !delivery.forget else {
            return .done
        }
        if connection != nil && ContinuousClock.now < stalledAt {
            await withCheckedContinuation { roomWaiters.append($0) }
            return .waited
        }
        // Only this stream's memory can be spilled here (others spill at their next output).
        guard let (offset, chunks) = deliveries[token]!.held[stream]!.beginSpill() else { return .done }
        if let file = delivery.spool[stream] { return .spill(file, offset: offset, chunks: chunks) }
        do {
            let file = try SpoolFile(path: "\(configuration.spoolDirectory)/\(token).\(stream.name)")
            deliveries[token]!.spool[stream] = file
            return .spill(file, offset: offset, chunks: chunks)
        } catch {
            deliveries[token]!.held[stream]!.spillFailed()
            throw WorkerError("worker \(configuration.name) cannot spool output: \(error)")
        }
    }

    private func spilled(_ token: AttemptToken, _ stream: OutputStreamKind, upTo offset: Int) {
        guard deliveries[token] != nil else { return }
        free(deliveries[token]!.held[stream]!.spilled(upTo: offset))
        wake()
    }

    private func spillFailed(_ token: AttemptToken, _ stream: OutputStreamKind) {
        deliveries[token]?.held[stream]?.spillFailed()
    }

    /// `bytes` of memory were let go: outputs waiting for room look again.
    private func free(_ bytes: Int) {
        guard bytes > 0 else { return }
        memoryBytes -= bytes
        wakeRoomWaiters()
    }

    private func wakeRoomWaiters() {
        let waiters = roomWaiters
        roomWaiters = []
        waiters.forEach { $0.resume() }
    }

    /// Lets go of everything held for `token`: its memory and its spool files.
    private func drop(_ token: AttemptToken) {
        guard let delivery = deliveries.removeValue(forKey: token) else { return }
        delivery.spool.values.forEach { $0.remove() }
        free(delivery.held.values.reduce(0) { $0 + $1.memoryBytes })
    }

    func ended(_ token: AttemptToken, job: JobID, _ end: AttemptEnd) {
        var delivery = deliveries[token] ?? Delivery(job: job)
        if deliveries[token] == nil {
            // Never accepted (it came while draining): only its end travels.
            delivery.sent = connection == nil ? [:] : [.stdout: 0, .stderr: 0]
        }
        if delivery.forget {
            deliveries[token] = delivery
            drop(token)
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

    /// A heartbeat is due: besides sending it, outputs waiting for room check whether the hub
    /// stalled.
    func heartbeat() {
        sendControl(.heartbeat)
        wakeRoomWaiters()
    }

    func wake() {
        connection?.wake.yield()
    }

    /// What the writer sends next on connection `id`: control first, then output while less than
    /// `window` bytes wait for the hub's ack, then ends.
    func nextToSend(on id: UInt64) -> Outgoing? {
        guard connection?.id == id else { return nil }
        if !control.isEmpty { return .control(control.removeFirst()) }
        if !gaps.isEmpty { return gaps.removeFirst() }
        let unacknowledged = unacknowledged
        for (token, delivery) in deliveries.sorted(by: { $0.key < $1.key })
        where !delivery.forget && unacknowledged < Self.window {
            for stream in OutputStreamKind.allCases {
                guard let sent = delivery.sent[stream],
                    let piece = delivery.held[stream]?.piece(from: sent, count: Self.frameBytes)
                else { continue }
                switch piece {
                case .memory(let slices):
                    deliveries[token]?.sent[stream] = sent + slices.reduce(0) { $0 + $1.count }
                    return .memory(token: token, stream: stream, offset: sent, slices: slices)
                case .spool(let count):
                    guard let file = delivery.spool[stream] else { continue }
                    deliveries[token]?.sent[stream] = sent + count
                    return .output(token: token, stream: stream, offset: sent, count: count, file: file)
                }
            }
        }
        for (token, delivery) in deliveries where delivery.end != nil && !delivery.endSent && !delivery.forget {
            // The end goes after the last byte of output, never before it.
            guard !delivery.sent.isEmpty,
                OutputStreamKind.allCases.allSatisfy({ (delivery.sent[$0] ?? 0) == delivery.written($0) })
            else { continue }
            deliveries[token]?.endSent = true
            return .control(.ended(AttemptEnded(attempt: token, end: delivery.end!)))
        }
        return nil
    }

    /// Output bytes sent on this connection and not yet acknowledged.
    private var unacknowledged: Int {
        deliveries.values.reduce(0) { total, delivery in
            total + delivery.sent.reduce(0) { $0 + max(0, $1.value - (delivery.held[$1.key]?.acked ?? 0)) }
        }
    }

    /// Output bytes per frame: large frames cost less per byte (the hub accepts up to 1 MiB), but
    /// the hub reads several ahead while it stores one. A 1 GiB job: 1 MiB frames were stored at
    /// 414-458 MB/s with the hub peaking at 84-88 MiB, 512 KiB ones at 380-440 MB/s and 69-74 MiB.
    static let frameBytes = (512 << 10) - OutputFrame.headerSize

    /// Output bytes held in memory, over every attempt, before outputs wait for room (or spill);
    /// while the hub keeps up, nothing goes to the spool. A 1 GiB job through a worker
    /// (`xn-bench --processes 1024`): 4 MiB stored 370-445 MB/s with the worker peaking at
    /// 51-56 MiB, 8 MiB 442-449 MB/s at 59-67 MiB.
    static let memoryBudget = 4 << 20

    /// How long an output waits for room while the hub is connected and acknowledges nothing,
    /// before its memory goes to the spool and the job runs on.
    static let stallLimit = Duration.seconds(1)

    /// Output bytes sent but not yet acknowledged, at most. Without a limit the writer hands
    /// frames to the event loop faster than the socket takes them: memory grows and heartbeats
    /// queue behind the output until the hub declares the worker lost.
    static let window = 8 << 20

    enum Outgoing: Sendable {
        case control(WorkerMessage)
        /// Output from memory.
        case memory(token: AttemptToken, stream: OutputStreamKind, offset: Int, slices: [ArraySlice<UInt8>])
        /// Output from the spool: `count` bytes at `offset`.
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
    func connected(_ wake: AsyncStream<Void>.Continuation, executor: any TaskExecutor) -> UInt64 {
        connectionCount += 1
        connection = (connectionCount, wake, executor)
        gaps = []
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
        gaps = []
        control.removeAll { $0 == .heartbeat }
        wakeRoomWaiters()
    }

    func refusedForGood(_ reason: String) {
        fatal = reason
        stopped = true
    }

    var isStopped: Bool { stopped }
}
