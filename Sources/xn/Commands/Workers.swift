import ArgumentParser
import XNClient
import XNProtocol

/// `xn workers`: the workers connected to the hub.
struct Workers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers", abstract: "List the workers connected to the hub.")

    @Flag(help: "Print JSON for scripts.")
    var json = false

    @OptionGroup var client: ClientOptions

    func run() async throws {
        let list = try await reportingErrors { try await client.makeClient().workers() }
        if json {
            printJSON(list.workers)
            return
        }
        var rows = [["NAME", "LABELS", "SLOTS", "CONNECTED", "HEARTBEAT", "VERSION"]]
        for worker in list.workers {
            let labels = worker.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            rows.append([
                worker.name + (worker.draining ? " (draining)" : ""), labels.isEmpty ? "-" : labels,
                "\(worker.running)/\(worker.slots)", worker.connectedAt, worker.lastHeartbeat, worker.version,
            ])
        }
        printTable(rows)
    }
}
