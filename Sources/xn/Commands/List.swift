import ArgumentParser
import Foundation
import XNClient
import XNProtocol

/// `xn list`: recent jobs, newest first, as a table or `--json`.
struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List jobs, newest first.")

    @Option(help: "Only jobs in these states (comma-separated: queued, running, succeeded, failed, ...).")
    var state: String?

    @Option(help: "How many jobs to show.")
    var limit = 50

    @Option(help: "Only jobs submitted with the token of this name.")
    var owner: String?

    @Option(help: ArgumentHelp("Only jobs with this label (repeat for several).", valueName: "key=value"))
    var label: [String] = []

    @Option(help: "Only jobs whose id, command, arguments or owner contain this text.")
    var text: String?

    @Flag(help: "Print JSON for scripts.")
    var json = false

    @OptionGroup var client: ClientOptions

    func run() async throws {
        var states: [JobState] = []
        for name in (state ?? "").split(separator: ",") {
            guard let parsed = JobState(rawValue: String(name)) else {
                throw ValidationError(
                    "unknown state '\(name)'; states: \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            states.append(parsed)
        }
        guard (1...1000).contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
        var labels: [String: String] = [:]
        for pair in label {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw ValidationError("--label \(pair): expected key=value")
            }
            labels[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        let filter = Filter(owner: owner, labels: labels, text: text)
        try await Self.show(client: client, states: states, limit: limit, filter: filter, json: json)
    }

    /// What `--owner`, `--label` and `--text` ask for.
    struct Filter {
        var owner: String?
        var labels: [String: String] = [:]
        var text: String?
    }

    static func show(
        client: ClientOptions, states: [JobState], limit: Int, filter: Filter = Filter(), json: Bool
    ) async throws {
        let page = try await reportingErrors {
            try await client.makeClient().list(
                states: states, limit: limit, owner: filter.owner, labels: filter.labels, text: filter.text)
        }
        if json {
            printJSON(page.jobs)
            return
        }
        var rows = [["ID", "STATE", "EXIT", "CREATED", "COMMAND"]]
        for job in page.jobs {
            let exit = job.exitCode.map(String.init) ?? job.signal.map { "sig \($0)" } ?? "-"
            let command = ([job.command] + job.args).joined(separator: " ")
            rows.append([job.id, job.state.rawValue, exit, job.createdAt, String(command.prefix(60))])
        }
        printTable(rows)
    }
}

func printTable(_ rows: [[String]]) {
    guard let header = rows.first else { return }
    let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
    for row in rows {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        say(cells.joined(separator: "  "))
    }
}

func printJSON(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    if let data = try? encoder.encode(value) {
        say(String(decoding: data, as: UTF8.self))
    }
}
