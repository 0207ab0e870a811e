import ArgumentParser
import Foundation
import XNClient
import XNProtocol

/// `xn attach ID`: the job's output so far, then live output and input, until it ends or Ctrl-].
struct Attach: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Attach to a job: its output so far, then live output and input.",
        discussion: """
            A `--tty` job gets this terminal, raw: every key goes to the job, Ctrl-] detaches and leaves it \
            running. Otherwise lines of stdin go to the job when it keeps its stdin open, a line `/term` \
            terminates it, and end of input closes its stdin. A dropped connection is resumed where it left \
            off. Attaching to a finished job prints its output and how it ended.
            """)

    @Argument(help: "The job id.")
    var id: String

    @Flag(help: "Watch only: nothing typed reaches the job.")
    var readOnly = false

    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await Self.attach(id, client: client, readOnly: readOnly)
    }

    /// `xn attach ID` and execnode's `xn -a ID`.
    static func attach(_ id: String, client: ClientOptions, readOnly: Bool) async throws {
        let hub = try client.makeClient()
        let end = try await reportingErrors {
            let job = try await hub.job(id)
            return try await attachInteractively(hub: hub, job: job, readOnly: readOnly)
        }
        switch end {
        case .detached:
            printError("detached from job \(id); it keeps running (xn attach \(id))")
        case .exited(let job):
            printError(
                "job \(job.id) \(job.state.rawValue)\(job.exitCode.map { " (exit \($0))" } ?? "")\(job.err.map { ": \($0)" } ?? "")"
            )
            throw ExitCode(exitStatus(of: job))
        }
    }
}

/// The user left an interactive `xn run` with Ctrl-]: the job keeps running.
struct Detached: Error {
    let id: String
}
