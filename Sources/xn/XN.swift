import ArgumentParser
import XNClient
import XNProtocol

/// `xn`: the hub, and the client for people and scripts. execnode's `-s`, `-l` and `-f` work too.
@main
struct XN: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xn",
        abstract: "Run commands on a hub over HTTP, follow them, fetch their output.",
        discussion: """
            Start a hub with `xn hub`, then `xn run -- CMD ARGS`. execnode's flags still work:
            `xn -s "cmd args"` submits, `xn -l` lists, `xn -f ID` fetches a result (hub from $XN_HUB).
            """,
        version: xnVersion,
        subcommands: [
            Hub.self, WorkerCommand.self, Run.self, Submit.self, Attach.self, List.self, Show.self, Logs.self,
            Cancel.self, Workers.self, Token.self, Audit.self,
        ])

    @Option(name: .customShort("s"), help: "Submit a command line (execnode style) and print the job id.")
    var submitLine: String?

    @Flag(name: .customShort("l"), help: "List jobs (execnode style).")
    var listJobs = false

    @Option(name: .customShort("f"), help: "Fetch a job's result (execnode style).")
    var fetchID: String?

    func run() async throws {
        // execnode's flags talk to $XN_HUB (or the default hub); a root --hub would clash with the
        // subcommands' own --hub in ArgumentParser.
        let client = try ClientOptions.parse([])
        if let submitLine {
            let words = submitLine.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let command = words.first else { throw ValidationError("-s needs a command line") }
            try await Submit.submitCommand(command, args: Array(words.dropFirst()), client: client)
        } else if listJobs {
            try await List.show(client: client, states: [], limit: 50, json: false)
        } else if let fetchID {
            try await Show.show(fetchID, client: client, json: false, withOutput: true)
        } else {
            throw CleanExit.helpRequest(self)
        }
    }
}
