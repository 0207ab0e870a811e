import ArgumentParser
import XNClient
import XNProtocol

/// `xn`: the hub, and the client for people and scripts. execnode's `-s`, `-a`, `-l` and `-f` work
/// too, as its README describes them.
@main
struct XN: AsyncParsableCommand {
    // Every command names itself: without `commandName`, ArgumentParser derives each name with
    // `String(describing:)`, whose first dynamic casts scan every conformance record in the
    // process, a few milliseconds at each start of `xn`.
    static let configuration = CommandConfiguration(
        commandName: "xn",
        abstract: "Run commands on a hub over HTTP, follow them, fetch their output.",
        discussion: """
            Start a hub with `xn hub`, then `xn run -- CMD ARGS`. execnode's flags still work (hub from \
            $XN_HUB): `xn -s "cmd args"` submits a job whose stdin stays open and prints its id, `xn -a ID` \
            attaches to it (a line `/term` ends it), `xn -l` lists, `xn -f ID` fetches a result.
            """,
        version: xnVersion,
        subcommands: [
            Hub.self, WorkerCommand.self, Run.self, Submit.self, Attach.self, List.self, Show.self, Logs.self,
            Cancel.self, Workers.self, Token.self, Audit.self,
        ])

    @Option(
        name: .customShort("s"),
        help: ArgumentHelp(
            "Submit a command line (execnode style), its stdin kept open for -a, and print the job id.",
            valueName: "command line"))
    var submitLine: String?

    @Option(
        name: .customShort("a"),
        help: ArgumentHelp("Attach to a job (execnode style), as `xn attach ID`.", valueName: "id"))
    var attachID: String?

    @Flag(name: .customShort("l"), help: "List jobs (execnode style).")
    var listJobs = false

    @Option(name: .customShort("f"), help: ArgumentHelp("Fetch a job's result (execnode style).", valueName: "id"))
    var fetchID: String?

    func run() async throws {
        // execnode's flags talk to $XN_HUB (or the default hub); a root --hub would clash with the
        // subcommands' own --hub in ArgumentParser.
        let client = try ClientOptions.parse([])
        if let submitLine {
            let words = submitLine.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let command = words.first else { throw ValidationError("-s needs a command line") }
            try await Submit.submitCommand(command, args: Array(words.dropFirst()), client: client)
        } else if let attachID {
            try await Attach.attach(attachID, client: client, readOnly: false)
        } else if listJobs {
            try await List.show(client: client, states: [], limit: 50, json: false)
        } else if let fetchID {
            let job = try await Show.show(fetchID, client: client, json: false, withOutput: true)
            if !job.state.isTerminal {
                printError(
                    "job \(fetchID) is still \(job.state.rawValue): this is its output so far (xn -a \(fetchID) attaches)"
                )
            }
        } else {
            throw CleanExit.helpRequest(self)
        }
    }
}
