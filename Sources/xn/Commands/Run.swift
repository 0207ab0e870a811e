import ArgumentParser
import Foundation
import XNClient
import XNProtocol

/// `xn run -- CMD ARGS`: submit, print the output as it comes, exit with the job's exit code.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command on the hub, print its output, and exit with its exit code.")

    @OptionGroup var client: ClientOptions
    @OptionGroup var spec: SpecOptions

    func run() async throws {
        let spec = try spec.makeSpec()
        let hub = client.makeClient()
        let job = try await reportingErrors {
            let submitted = try await hub.submit(spec)
            return try await cancelOnInterrupt(submitted.id, hub: hub) { try await follow(submitted.id, on: hub) }
        }
        // A plain non-zero exit speaks for itself; anything else (timeout, spawn failure, signal) is explained.
        if let err = job.err, !(job.state == .failed && job.exitCode != nil && job.signal == nil) {
            printError("job \(job.id) \(job.state.rawValue): \(err)")
        }
        throw ExitCode(exitStatus(of: job))
    }
}

/// Prints a job's stdout and stderr as they grow until it ends; returns the ended job.
func follow(_ id: String, on hub: HubClient) async throws -> JobView {
    var stdoutOffset = 0
    var stderrOffset = 0
    while true {
        let job = try await hub.job(id, wait: 0.5)
        // Read after the state so output written before the end is never missed.
        let out = try await hub.output(id, stream: "stdout", from: stdoutOffset)
        let err = try await hub.output(id, stream: "stderr", from: stderrOffset)
        writeBytes(out, to: .standardOutput)
        writeBytes(err, to: .standardError)
        stdoutOffset += out.count
        stderrOffset += err.count
        if job.state.isTerminal && out.isEmpty && err.isEmpty { return job }
    }
}

/// The job's exit code, or a shell-like status for jobs that did not exit on their own.
func exitStatus(of job: JobView) -> Int32 {
    if let code = job.exitCode, job.signal == nil { return code }
    switch job.state {
    case .timedOut: return 124
    case .canceled: return 130
    case .lost: return 255
    default: break
    }
    if let signal = job.signal { return 128 + signal }
    return job.state == .failed ? 127 : 0
}
