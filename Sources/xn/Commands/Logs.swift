import ArgumentParser
import Foundation
import XNClient

/// `xn logs ID`: the job's exact stdout and stderr bytes, on this command's stdout and stderr.
struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print a job's output (stdout and stderr, byte-exact).")

    @Argument(help: "The job id.")
    var id: String

    @Flag(name: [.customShort("f"), .long], help: "Keep printing output as it is written until the job ends.")
    var follow = false

    @OptionGroup var client: ClientOptions

    func run() async throws {
        if follow {
            _ = try await reportingErrors { try await xn.follow(id, on: client.makeClient()) }
        } else {
            try await Self.printOutput(id, client: client)
        }
    }

    static func printOutput(_ id: String, client: ClientOptions) async throws {
        let hub = try client.makeClient()
        let (out, err) = try await reportingErrors {
            (try await hub.output(id, stream: "stdout"), try await hub.output(id, stream: "stderr"))
        }
        writeAll(1, out)
        writeAll(2, err)
    }
}
