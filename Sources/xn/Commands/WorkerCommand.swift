import ArgumentParser
import Foundation
import Logging
import XNExec
import XNProtocol
import XNWorker

/// `xn worker --hub ws://HOST:PORT`: run jobs for a hub; Ctrl-C or SIGTERM drains it.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run jobs for a hub: dial out, take jobs, stream their output back.",
        discussion: "SIGTERM or Ctrl-C drains: no new jobs, running ones get --drain-grace, then exit.")

    @Option(help: "The hub, as ws://HOST:PORT (default: $XN_HUB, else ws://127.0.0.1:9000).")
    var hub: String?

    @Option(help: "The worker's name (default: the host name).")
    var name = ProcessInfo.processInfo.hostName

    @Option(help: "Labels jobs can ask for: k=v,k=v.")
    var labels: String?

    @Option(help: "Jobs run at once (default: number of cores).")
    var slots = ProcessInfo.processInfo.activeProcessorCount

    @Option(
        help:
            "Folder for output not yet acknowledged by the hub (default: a new temporary folder, removed when the worker stops)."
    )
    var spool: String?

    @Option(help: "Seconds running jobs get to finish when the worker is stopped.")
    var drainGrace = 30.0

    @Option(help: "Seconds between SIGTERM and SIGKILL on cancel or timeout.")
    var killGrace = 5.0

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "info"

    @Option(help: "Log format: text, or json (one object a line: time, level, message, job, worker, token).")
    var logFormat = LogFormat.text

    @OptionGroup var jobs: JobUserOptions

    @OptionGroup var credentials: TokenOptions

    func validate() throws {
        guard (1...1024).contains(slots) else { throw ValidationError("--slots must be from 1 to 1024") }
        guard name != WireProtocol.inProcessWorkerName else {
            throw ValidationError("--name \(name) is the name of a hub's own slots; pick another")
        }
        _ = try parsedLabels()
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level \(logLevel) is not a level")
        }
    }

    func parsedLabels() throws -> [String: String] {
        try keyValuePairs((labels ?? "").split(separator: ",").map(String.init), option: "--labels")
    }

    func run() async throws {
        giveFreedBuffersBack()
        let url =
            hub ?? ProcessInfo.processInfo.environment["XN_HUB"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "ws://127.0.0.1:9000"
        var configuration = WorkerConfiguration(
            hub: url, name: name,
            spoolDirectory: spool ?? NSTemporaryDirectory() + "xn-worker-\(getpid())-\(UUID().uuidString.prefix(8))")
        configuration.labels = try parsedLabels()
        configuration.slots = slots
        configuration.drainGrace = .milliseconds(Int64(drainGrace * 1000))
        configuration.killGrace = .milliseconds(Int64(killGrace * 1000))
        configuration.jobIdentity = try jobs.identity()
        configuration.jobLimits = jobs.limits
        configuration.passEnvironment = jobs.passedEnvironment
        configuration.token = try credentials.resolved()
        configuration.caFile = credentials.caFile
        let logger = makeLogger(label: "xn.worker", level: logLevel, format: logFormat)
        configuration.isolatesJobs = jobs.isolate
        let (executor, cgroups) = try await jobs.executor(
            identity: configuration.jobIdentity,
            hiding: [configuration.spoolDirectory] + [credentials.tokenFilePath].compactMap { $0 })
        say("xn worker \(name) for \(url): \(slots) slot(s); \(jobs.describe(configuration.jobIdentity)); \(cgroups)")
        defer { executor.cgroups?.remove() }
        // A spool folder of our own making is named after this process: no later worker reads it.
        defer { if spool == nil { try? FileManager.default.removeItem(atPath: configuration.spoolDirectory) } }
        do {
            try await runWorker(configuration: configuration, executor: executor, logger: logger)
        } catch {
            printError("worker stopped: \(error)")
            throw ExitCode(1)
        }
    }
}
