import ArgumentParser
import Foundation
import XNClient
import XNProtocol

/// `xn show ID`: one job's state, times and outcome (and its output with execnode's `-f`).
struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one job.")

    @Argument(help: "The job id.")
    var id: String

    @Flag(help: "Print JSON for scripts (includes the output as text).")
    var json = false

    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await Self.show(id, client: client, json: json, withOutput: false)
    }

    /// Prints the job (and with `withOutput` its output so far) and returns it.
    @discardableResult
    static func show(_ id: String, client: ClientOptions, json: Bool, withOutput: Bool) async throws -> JobView {
        let job = try await reportingErrors { try await client.makeClient().job(id) }
        if json {
            printJSON(job)
            return job
        }
        var lines: [(String, String)] = [
            ("id", job.id), ("state", job.state.rawValue),
            ("command", ([job.command] + job.args).map(quoteIfNeeded).joined(separator: " ")),
        ]
        if let program = job.program { lines.append(("program", program)) }
        if let waiting = job.waiting { lines.append(("waiting", waiting)) }
        if let name = job.name { lines.append(("name", name)) }
        if let labels = job.labels {
            lines.append(
                ("labels", labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")))
        }
        if job.attempts > 1 { lines.append(("attempts", String(job.attempts))) }
        if let cwd = job.cwd { lines.append(("cwd", cwd)) }
        if let timeout = job.timeout { lines.append(("timeout", "\(timeout)s")) }
        if let limits = job.limits {
            let asked = limits.byName.compactMap { name, value in
                value.map { name == "memory" ? "memory \(formatBytes($0))" : "\(name) \($0)" }
            }
            lines.append(("limits", asked.joined(separator: ", ")))
        }
        if job.isolate == true {
            lines.append(("isolated", job.network == true ? "yes, with network" : "yes, no network"))
        }
        lines.append(("created", job.createdAt))
        if let started = job.startedAt { lines.append(("started", started)) }
        if let finished = job.finishedAt { lines.append(("finished", finished)) }
        if let code = job.exitCode { lines.append(("exit code", String(code))) }
        if let signal = job.signal { lines.append(("signal", String(signal))) }
        if let err = job.err { lines.append(("err", err)) }
        lines.append(("stdout", "\(job.stdoutBytes) bytes" + (job.stdoutTruncated ? " (truncated)" : "")))
        lines.append(("stderr", "\(job.stderrBytes) bytes" + (job.stderrTruncated ? " (truncated)" : "")))
        if let callback = job.callback { lines.append(("callback", callback)) }
        if let status = job.callbackStatus {
            lines.append(("callback status", status))
        } else if let delivery = job.callbackDelivery, delivery.state == .pending {
            var text = "pending"
            if delivery.attempts > 0 {
                text += ", \(delivery.attempts) attempt(s) so far, the last: \(delivery.lastResult ?? "?")"
            }
            if let next = delivery.nextAttemptAt { text += "; next try at \(next)" }
            lines.append(("callback status", text))
        }
        if let usage = job.usage {
            var text = String(format: "%.2fs user, %.2fs system", usage.cpuUserSeconds, usage.cpuSystemSeconds)
            if let peak = usage.peakMemoryBytes { text += ", peak memory \(formatBytes(peak))" }
            lines.append(("usage", text))
        }
        if let worker = job.worker { lines.append(("worker", worker)) }
        if let owner = job.owner { lines.append(("token", owner)) }
        let width = lines.map(\.0.count).max() ?? 0
        for (key, value) in lines {
            say("\((key + ":").padding(toLength: width + 1, withPad: " ", startingAt: 0)) \(value)")
        }
        if withOutput {
            try await Logs.printOutput(job.id, client: client)
        }
        return job
    }
}

private func quoteIfNeeded(_ word: String) -> String {
    word.isEmpty || word.contains(where: { $0.isWhitespace || $0 == "'" || $0 == "\"" })
        ? "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" : word
}
