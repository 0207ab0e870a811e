import ArgumentParser
import Foundation
import XNClient
import XNProtocol

/// `xn run -- CMD ARGS`: submit, print the output as it comes, exit with the job's exit code.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command on the hub, print its output, and exit with its exit code.",
        discussion: """
            `-it` gives a remote terminal: keys (Ctrl-C too) go to the job, Ctrl-] detaches and leaves it \
            running. `-i` alone sends this command's stdin to the job (a line `/term` terminates it).
            """)

    @OptionGroup var client: ClientOptions
    @OptionGroup var spec: SpecOptions

    /// How long the submit waits for the job to end: a job done by then (the quick commands
    /// scripts run in loops) has its output fetched in two plain requests, with no attach
    /// WebSocket to set up; a longer one is followed live, from its first byte, after it.
    static let quickEnd = 0.05

    func run() async throws {
        let spec = try spec.makeSpec()
        let hub = try client.makeClient()
        let job: JobView
        do {
            job = try await reportingErrors {
                let submit = { try await hub.submit(spec, wait: spec.keepsInputOpen ? nil : Self.quickEnd) }
                return try await cancelOnInterrupt(submit: submit, hub: hub) { submitted in
                    guard spec.keepsInputOpen else {
                        if submitted.state.isTerminal { return try await printOutput(of: submitted, on: hub) }
                        return try await follow(submitted.id, on: hub)
                    }
                    switch try await attachInteractively(hub: hub, job: submitted, readOnly: false) {
                    case .exited(let job): return job
                    case .detached: throw Detached(id: submitted.id)
                    }
                }
            }
        } catch let detached as Detached {
            printError("detached from job \(detached.id); it keeps running (xn attach \(detached.id))")
            return
        }
        // A plain non-zero exit speaks for itself; anything else (timeout, spawn failure, signal,
        // output the hub could not store) is explained.
        if let err = job.err, !(job.state == .failed && (job.exitCode ?? 0) != 0 && job.signal == nil) {
            printError("job \(job.id) \(job.state.rawValue): \(err)")
        }
        throw ExitCode(exitStatus(of: job))
    }
}

/// Prints the stored output of a job that has ended, stdout then stderr, and returns it.
func printOutput(of job: JobView, on hub: HubClient) async throws -> JobView {
    if job.stdoutBytes > 0 { writeAll(1, try await hub.output(job.id, stream: "stdout")) }
    if job.stderrBytes > 0 { writeAll(2, try await hub.output(job.id, stream: "stderr")) }
    return job
}

/// Prints a job's stdout and stderr as they are written until it ends (a read-only attach, so a
/// dropped connection resumes where it was); returns the ended job.
func follow(_ id: String, on hub: HubClient) async throws -> JobView {
    let client = AttachClient(hub: hub, job: id, readOnly: true)
    let end = try await client.run { event in
        switch event {
        case .output(.stdout, let bytes): writeAll(1, bytes)
        case .output(.stderr, let bytes): writeAll(2, bytes)
        case .problem(let message): printError(message)
        case .reconnecting(let why): printError("connection lost (\(why)), reconnecting")
        }
    }
    guard case .exited(let job) = end else { return try await hub.waitForEnd(id) }
    return job
}

/// The job's exit code, or a shell-like status for jobs that did not exit on their own; 1 for a
/// job that failed although its process exited 0 (the hub could not store its output).
func exitStatus(of job: JobView) -> Int32 {
    if let code = job.exitCode, job.signal == nil { return code == 0 && job.state == .failed ? 1 : code }
    switch job.state {
    case .timedOut: return 124
    case .canceled: return 130
    case .lost: return 255
    default: break
    }
    if let signal = job.signal { return 128 + signal }
    return job.state == .failed ? 127 : 0
}
