import Foundation
import XNExec
import XNProtocol
import XNStore

/// Signals and input for jobs that run (or are about to), on the hub's slots or on a worker.
extension Scheduler {
    /// What became of a signal for a job.
    enum SignalDelivery: Sendable {
        case sent
        /// Queued or assigned, or its worker is away: nothing to signal (yet).
        case notRunning(String)
        case notFound
    }

    /// Sends `signal` to a running job's process group, on the hub or on its worker.
    func signal(_ id: JobID, _ signal: Int32) async throws -> SignalDelivery {
        if let token = remoteToken(of: id) {
            guard let session = remote[token]?.session, let worker = workers[session] else {
                return .notRunning("its worker is disconnected")
            }
            var message = WireMessage(.signal)
            message.attempt = AttemptToken.format(token)
            message.signal = signal
            worker.outbox.yield(message)
            return .sent
        }
        if let process = localProcess(id) {
            process.signal(signal)
            return .sent
        }
        guard let job = try await store.job(id) else { return .notFound }
        return .notRunning(job.state.isTerminal ? "already ended" : "it has not started")
    }

    /// What an attached client does to a running job's input.
    enum InputAction: Sendable {
        case bytes([UInt8])
        case close
        case resize(rows: Int, cols: Int)

        var size: Int {
            if case .bytes(let bytes) = self { return bytes.count }
            return 16
        }
    }

    /// Passes input to a job, on the hub or on its worker; returns why it could not. Input for a
    /// job that keeps its stdin open but has not started yet waits for it (typing ahead).
    func input(_ id: JobID, _ action: InputAction) async -> String? {
        if let token = remoteToken(of: id) {
            guard let session = remote[token]?.session, let worker = workers[session] else {
                return "the job's worker is disconnected"
            }
            worker.outbox.yield(Self.inputMessage(action, token: token))
            return nil
        }
        if let process = localProcess(id) { return Self.apply(action, to: process) }
        if !holdsLocalSlot(id) {
            guard let job = try? await store.job(id), job.state == .queued, job.spec.keepsInputOpen else {
                return "the job is not running"
            }
            // It may have started while the store was read.
            if remoteToken(of: id) != nil { return await input(id, action) }
            if let process = localProcess(id) { return Self.apply(action, to: process) }
        }
        var pending = pendingInput[id] ?? PendingInput()
        guard pending.bytes + action.size <= PendingInput.limit else { return "the job has not started yet" }
        pending.actions.append(action)
        pending.bytes += action.size
        pendingInput[id] = pending
        return nil
    }

    /// Input that waits for its job's process (or worker) to exist.
    struct PendingInput {
        static let limit = 1 << 20
        var actions: [InputAction] = []
        var bytes = 0
    }

    /// Hands input kept for a job to the worker it was just assigned to.
    func flushPendingInput(_ id: JobID, token: UInt64, to outbox: AsyncStream<WireMessage>.Continuation) {
        for action in pendingInput.removeValue(forKey: id)?.actions ?? [] {
            outbox.yield(Self.inputMessage(action, token: token))
        }
    }

    static func inputMessage(_ action: InputAction, token: UInt64) -> WireMessage {
        var message = WireMessage(.input)
        message.attempt = AttemptToken.format(token)
        switch action {
        case .bytes(let bytes): message.data = Data(bytes).base64EncodedString()
        case .close: message.ended = true
        case .resize(let rows, let cols): message.size = JobTerminal(rows: rows, cols: cols)
        }
        return message
    }

    static func apply(_ action: InputAction, to process: any RunningProcess) -> String? {
        do throws(InputError) {
            switch action {
            case .bytes(let bytes): try process.send(bytes)
            case .close: process.closeInput()
            case .resize(let rows, let cols):
                try process.resize(TerminalSize(rows: UInt16(clamping: rows), columns: UInt16(clamping: cols)))
            }
        } catch {
            return error.description
        }
        return nil
    }
}
