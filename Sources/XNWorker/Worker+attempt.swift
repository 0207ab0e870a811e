import Foundation
import Glibc
import Logging
import XNExec
import XNProtocol

/// Why a worker stops a running job.
enum StopReason: Sendable {
    case canceled, timedOut, killed, drained
}

/// One attempt on this worker: its process, its spooled output, what the hub has of it.
struct Attempt {
    let token: UInt64
    let job: String
    let spec: JobSpec
    let outputLimit: Int
    let stops: AsyncStream<StopReason>.Continuation
    let stopSignals: AsyncStream<StopReason>
    var spool: [OutputStreamKind: SpoolFile] = [:]
    /// Bytes spooled per stream.
    var written: [OutputStreamKind: Int] = [:]
    /// Bytes sent on the current connection (from the hub's ack); nil until the hub says.
    var sent: [OutputStreamKind: Int] = [:]
    /// Bytes the hub has stored, as its acks say.
    var acked: [OutputStreamKind: Int] = [:]
    var end: AttemptEnd?
    var endSent = false
    /// The hub no longer wants this attempt: kill it and report nothing.
    var forget = false
    var stopReason: StopReason?
    /// Set once the process runs, for signals and input from the hub.
    var process: (any RunningProcess)?
    /// Input that came before the process existed, delivered once it does.
    var earlyInput: [WireMessage] = []
}

extension Worker {
    /// Runs one assigned attempt from spawn to its end, spooling output as it comes.
    nonisolated func execute(_ token: UInt64) async {
        guard let attempt = await attempts[token] else { return }
        let spec = attempt.spec
        var request = ProcessRequest(spec, outputLimit: attempt.outputLimit)
        request.identity = configuration.jobIdentity
        request.limits = configuration.jobLimits.tightened(by: attempt.spec.limits)
        request.tag = attempt.job
        let process: any RunningProcess
        do {
            process = try executor.start(request)
        } catch {
            await finish(token, AttemptEnd(err: error.description))
            return
        }
        await running(token, process)
        var started = WireMessage(.started)
        started.attempt = AttemptToken.format(token)
        started.pid = process.pid
        await sendControl(started)
        let result = await withTaskGroup(of: Void.self) { group -> ProcessResult in
            group.addTask {
                for await reason in attempt.stopSignals {
                    await self.noteStop(token, reason)
                    _ = await process.terminate(grace: self.configuration.killGrace)
                    return
                }
            }
            if let timeout = spec.timeout {
                group.addTask {
                    guard (try? await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))) != nil else { return }
                    attempt.stops.yield(.timedOut)
                }
            }
            for await chunk in process.output {
                await spool(token, chunk, into: attempt.spool[chunk.stream])
            }
            let result = await process.result()
            attempt.stops.finish()
            group.cancelAll()
            return result
        }
        let reason = await attempts[token]?.stopReason
        var end = AttemptEnd(
            stdoutBytes: result.stdoutBytes, stderrBytes: result.stderrBytes,
            stdoutTruncated: result.stdoutBytes > attempt.outputLimit,
            stderrTruncated: result.stderrBytes > attempt.outputLimit)
        switch result.termination {
        case .exited(let code): end.exitCode = code
        case .signaled(let signal): end.signal = signal
        }
        switch reason {
        case .timedOut?:
            end.timedOut = true
            end.err = "timed out after \(spec.timeout.map { $0 == $0.rounded() ? "\(Int($0))s" : "\($0)s" } ?? "?")"
        case .canceled?:
            end.canceled = true
        case .drained?:
            end.err = "worker \(configuration.name) shut down before the job finished"
        case .killed?, nil:
            break
        }
        await finish(token, end)
    }

    private nonisolated func spool(_ token: UInt64, _ chunk: OutputChunk, into file: SpoolFile?) async {
        guard let file else { return }
        let offset = await attempts[token]?.written[chunk.stream] ?? 0
        do {
            try await file.append(chunk.bytes, at: offset)
        } catch {
            logger.error("\(error)")
            return
        }
        await wrote(token, chunk.stream, upTo: offset + chunk.bytes.count)
    }

    func wrote(_ token: UInt64, _ stream: OutputStreamKind, upTo offset: Int) {
        attempts[token]?.written[stream] = offset
        wake()
    }

    func running(_ token: UInt64, _ process: any RunningProcess) {
        attempts[token]?.process = process
        for message in attempts[token]?.earlyInput ?? [] { deliver(message, to: process) }
        attempts[token]?.earlyInput = []
    }

    /// Input from the hub to the process. The hub checks what it can; what fails here (input
    /// closed, buffer full) is dropped.
    func deliver(_ message: WireMessage, to process: any RunningProcess) {
        if let data = message.data, let bytes = Data(base64Encoded: data) { try? process.send(Array(bytes)) }
        if let size = message.size {
            try? process.resize(TerminalSize(rows: UInt16(clamping: size.rows), columns: UInt16(clamping: size.cols)))
        }
        if message.ended == true { process.closeInput() }
    }

    func noteStop(_ token: UInt64, _ reason: StopReason) {
        if attempts[token]?.stopReason == nil { attempts[token]?.stopReason = reason }
    }

    func finish(_ token: UInt64, _ end: AttemptEnd) {
        guard var attempt = attempts[token] else { return }
        if attempt.forget {
            attempt.spool.values.forEach { $0.remove() }
            attempts[token] = nil
            return
        }
        attempt.end = end
        attempts[token] = attempt
        wake()
    }
}
