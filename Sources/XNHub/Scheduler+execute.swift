import Foundation
import Logging
import XNExec
import XNProtocol
import XNStore

extension Scheduler {
    /// Runs one job that holds a slot, from spawn to its recorded end. Off the actor: spawning
    /// and storing output must not hold up submissions and other jobs.
    nonisolated func execute(_ job: JobRecord) async {
        var request = ProcessRequest(job.spec, outputLimit: configuration.outputCap(of: job.spec))
        request.identity = configuration.jobIdentity
        request.limits = configuration.jobLimits.tightened(by: job.spec.limits)
        request.tag = job.id.rawValue
        let process: any RunningProcess
        do {
            process = try executor.start(request)
        } catch {
            await record(job, JobOutcome(state: .failed, err: error.description, finishedAt: Timestamp.now()))
            return
        }
        guard let stops = await attach(process, to: job.id) else {
            _ = await process.terminate(grace: configuration.killGrace)
            return
        }
        let result = await withTaskGroup(of: Void.self) { group -> ProcessResult in
            group.addTask {
                for await _ in stops {
                    _ = await process.terminate(grace: self.configuration.killGrace)
                    return
                }
            }
            if let timeout = job.spec.timeout {
                group.addTask {
                    guard (try? await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))) != nil else { return }
                    await self.requestStop(job.id, .timedOut(timeout))
                }
            }
            group.addTask {
                // A cancelled service (not a graceful shutdown) must not leave the process behind.
                await withTaskCancellationHandler {
                    _ = await process.result()
                } onCancel: {
                    process.signal(SIGKILL)
                }
            }
            await self.store(process.output, of: job.id)
            let result = await process.result()
            group.cancelAll()
            return result
        }
        await record(
            job, outcome(of: result, reason: await stopReason(job.id), cap: configuration.outputCap(of: job.spec)))
    }

    /// Appends each chunk to the store as it arrives, tracking each stream's offset.
    private nonisolated func store(_ output: ProcessOutput, of id: JobID) async {
        var offsets: [OutputStreamKind: Int] = [:]
        for await chunk in output {
            let offset = offsets[chunk.stream, default: 0]
            offsets[chunk.stream] = offset + chunk.bytes.count
            do {
                let stream: OutputStreamName = chunk.stream == .stdout ? .stdout : .stderr
                activity.output(id, stream, offset: offset, bytes: chunk.bytes)
                try await store.appendOutput(id, stream: stream, offset: offset, bytes: chunk.bytes)
                activity.stored(id, stream, upTo: offset + chunk.bytes.count)
            } catch {
                logger.error("cannot store output of job \(id): \(error)")
            }
        }
    }

    private nonisolated func outcome(of result: ProcessResult, reason: StopReason?, cap: Int) -> JobOutcome {
        var outcome: JobOutcome
        switch (reason, result.termination) {
        case (.canceled?, _):
            outcome = JobOutcome(state: .canceled, err: "canceled", finishedAt: Timestamp.now())
        case (.timedOut(let seconds)?, _):
            outcome = JobOutcome(
                state: .timedOut, err: "timed out after \(formatSeconds(seconds))", finishedAt: Timestamp.now())
        case (.shutdown?, _):
            outcome = JobOutcome(
                state: .lost, err: "hub shut down before the job finished; it was killed after the grace period",
                finishedAt: Timestamp.now())
        case (nil, .exited(0)):
            outcome = JobOutcome(state: .succeeded, exitCode: 0, finishedAt: Timestamp.now())
        case (nil, .exited(let code)):
            outcome = JobOutcome(state: .failed, exitCode: code, finishedAt: Timestamp.now())
        case (nil, .signaled(let signal)):
            outcome = JobOutcome(
                state: .failed, signal: signal, err: SignalName.death(signal), finishedAt: Timestamp.now())
        }
        if case .exited(let code) = result.termination { outcome.exitCode = code }
        if case .signaled(let signal) = result.termination { outcome.signal = signal }
        outcome.stdoutTruncated = result.stdoutBytes > cap
        outcome.stderrTruncated = result.stderrBytes > cap
        return outcome
    }

    /// Stores the end, frees the slot and announces the end.
    private nonisolated func record(_ job: JobRecord, _ outcome: JobOutcome) async {
        var ended: JobRecord?
        do {
            ended = try await store.finish(job.id, outcome)
        } catch {
            logger.error("cannot record the end of job \(job.id): \(error)")
        }
        await release(job.id)
        guard let ended else { return }
        await jobEnded(ended)
    }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
}
