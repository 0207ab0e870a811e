import ArgumentParser
import Foundation
import Logging
import XNExec
import XNHub
import XNProtocol
import XNWorker

/// `xn hub`: serve the API and run jobs on local slots; http-runner's `-p -i -w -n` work as before.
struct Hub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hub",
        abstract: "Start a hub: the HTTP API, the job store, and local slots that run jobs.")

    @Option(name: [.customShort("p"), .long], help: "TCP port (0 picks a free one).")
    var port = 9000

    @Option(name: [.customShort("i"), .long], help: "Interface to listen on.")
    var interface = "127.0.0.1"

    @Flag(
        help: """
            Listen on a non-loopback interface although no token exists, so nothing authenticates requests: \
            anyone who can reach the port can run any command as this user.
            """)
    var insecureNoAuth = false

    @Flag(
        help: """
            Listen on a non-loopback interface over plain HTTP although tokens are in use: every token crosses \
            the network in clear text. Prefer --tls-cert/--tls-key.
            """)
    var insecureHttp = false

    @Option(
        name: [.customShort("w"), .long],
        help: "Comma-separated commands allowed: bare names or absolute paths, matched by real file (default: all).")
    var whitelist: String?

    @Option(
        help: ArgumentHelp(
            "Under a whitelist (-w, or a token's --allow), the only variables a job's env may set, comma-separated (default: any but "
                + "those that change which code runs, such as LD_PRELOAD or BASH_ENV).", valueName: "names"))
    var allowEnv: String?

    @Option(
        name: [.customShort("n"), .long],
        help: "Finished jobs to keep; the oldest are purged first (default: keep all).")
    var maxJobs: Int?

    @Option(name: .long, help: "Data folder for the job store.")
    var data = "./xn-data"

    @Option(name: .long, help: "Jobs run at once on this hub (default: number of cores).")
    var slots = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Run no jobs on the hub itself: only workers run them.")
    var noLocal = false

    @Option(
        help: ArgumentHelp(
            "Folder holding xterm.js for the web page's terminal (default: ../share/xn/xterm beside this program, "
                + "where scripts/fetch-xterm.sh puts it, then /usr/share/javascript/xterm).", valueName: "dir"))
    var xtermDir: String?

    @Option(help: "Seconds after which a silent or disconnected worker's jobs are lost (or retried).")
    var heartbeatTimeout = 5.0

    @Option(
        name: .long,
        help: "Bytes kept per output stream of a job (at most; jobs may ask for less): bytes, or with K, M, G.")
    var maxOutput = ByteCount(bytes: HubConfiguration.defaultMaxOutputBytes)

    @Option(help: "Seconds a job may run: jobs without a timeout get it, jobs asking for more are refused.")
    var maxTimeout: Double?

    @Option(name: .long, help: "Seconds running jobs get to finish on shutdown before they are killed.")
    var grace = 10.0

    @Option(name: .long, help: "Seconds between SIGTERM and SIGKILL on cancel or timeout.")
    var killGrace = 5.0

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "info"

    @Option(help: "Log format: text, or json (one object a line: time, level, message, job, worker, token).")
    var logFormat = LogFormat.text

    @OptionGroup var jobs: JobUserOptions

    @Option(
        help: ArgumentHelp(
            "File holding the secret that signs callbacks (X-Xn-Signature); default: $XN_CALLBACK_SECRET.",
            valueName: "file"))
    var callbackSecretFile: String?

    @Option(
        help: ArgumentHelp(
            "Where callbacks may go, comma-separated: host names, addresses, CIDR networks (default: anywhere but "
                + "link-local and cloud metadata addresses, which must be named here to be allowed).",
            valueName: "hosts"))
    var callbackHosts: String?

    @Option(
        help: ArgumentHelp(
            "Names clients reach this hub by, comma-separated, beyond localhost and IP addresses; a request "
                + "naming another host is refused (DNS rebinding).", valueName: "names"))
    var publicName: String?

    @Option(
        help: ArgumentHelp("PEM certificate (chain) to serve HTTPS and WSS with; needs --tls-key.", valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("PEM private key of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Option(help: "Jobs that may wait queued at once; more submissions get 429 (default: no limit).")
    var maxQueued: Int?

    @Option(help: "Jobs of one token that may wait queued at once, unless the token has its own cap.")
    var maxQueuedPerToken: Int?

    /// `--allow-env` as names.
    private var allowedEnvironment: Set<String>? {
        allowEnv.map {
            Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        }
    }

    /// The callback secret from the file or the environment; a file that cannot be read is an error.
    func callbackSecret() throws -> [UInt8]? {
        if let path = callbackSecretFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("--callback-secret-file \(path): cannot read it")
            }
            let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !secret.isEmpty else { throw ValidationError("--callback-secret-file \(path) is empty") }
            return Array(secret.utf8)
        }
        let fromEnvironment = ProcessInfo.processInfo.environment["XN_CALLBACK_SECRET"] ?? ""
        return fromEnvironment.isEmpty ? nil : Array(fromEnvironment.utf8)
    }

    func validate() throws {
        for entry in (whitelist ?? "").split(separator: ",") where entry.contains("/") && !entry.hasPrefix("/") {
            throw ValidationError("-w \(entry): whitelist entries are bare names or absolute paths")
        }
        for name in allowedEnvironment ?? [] {
            if let reason = EnvironmentPolicy.denialReason(of: name) {
                throw ValidationError("--allow-env \(name): a job may never set it under a whitelist: \(reason)")
            }
        }
        let hosts = (callbackHosts ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        if let invalid = HubConfiguration.invalidCallbackHosts(hosts).first {
            throw ValidationError(
                "--callback-hosts \(invalid): not a host name, an address or a network like 10.0.0.0/8")
        }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        guard (0...65535).contains(port) else { throw ValidationError("-p must be a port from 0 to 65535") }
        guard slots >= 1 else { throw ValidationError("--slots must be at least 1") }
        if let maxJobs, maxJobs < 0 { throw ValidationError("-n must be 0 or more") }
        if let maxQueued, maxQueued < 0 { throw ValidationError("--max-queued must be 0 or more") }
        if let maxQueuedPerToken, maxQueuedPerToken < 0 {
            throw ValidationError("--max-queued-per-token must be 0 or more")
        }
        if let maxTimeout, !(maxTimeout > 0) { throw ValidationError("--max-timeout must be more than 0") }
        guard heartbeatTimeout > 0 else { throw ValidationError("--heartbeat-timeout must be more than 0") }
        guard grace >= 0, killGrace >= 0 else { throw ValidationError("--grace and --kill-grace must be 0 or more") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level \(logLevel) is not a level")
        }
    }

    func run() async throws {
        giveFreedBuffersBack()
        var configuration = HubConfiguration()
        configuration.host = interface
        configuration.port = port
        configuration.dataDirectory = data
        configuration.heartbeatTimeout = .milliseconds(Int64(heartbeatTimeout * 1000))
        configuration.whitelist = CommandWhitelist((whitelist ?? "").split(separator: ",").map(String.init))
        for entry in configuration.whitelist.entries where CommandWhitelist.realFile(of: entry) == nil {
            printError("warning: whitelist entry \(entry) is not a program on this machine; it allows nothing")
        }
        configuration.environmentPolicy = EnvironmentPolicy(allowed: allowedEnvironment)
        configuration.maxFinishedJobs = maxJobs
        configuration.maxOutputBytes = maxOutput.bytes
        configuration.maxTimeout = maxTimeout
        configuration.shutdownGrace = .milliseconds(Int64(grace * 1000))
        configuration.killGrace = .milliseconds(Int64(killGrace * 1000))
        configuration.callbackSecret = try callbackSecret()
        configuration.maxQueued = maxQueued
        configuration.maxQueuedPerToken = maxQueuedPerToken
        configuration.insecureNoAuth = insecureNoAuth
        configuration.insecureHTTP = insecureHttp
        configuration.tlsCertificate = tlsCert
        configuration.tlsKey = tlsKey
        let identity = try jobs.identity()
        configuration.jobLimits = jobs.limits.asJobLimits
        configuration.callbackHosts = Set(
            (callbackHosts ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                .filter { !$0.isEmpty })
        configuration.publicNames = (publicName ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }.filter { !$0.isEmpty }
        // The name it listens on is one clients use.
        if HubConfiguration.ipAddress(interface) == nil { configuration.publicNames.append(interface.lowercased()) }
        let logger = makeLogger(label: "xn.hub", level: logLevel, format: logFormat)
        configuration.xterm = try xterm()
        let (executor, cgroups) = try await jobs.executor(
            identity: identity, hiding: [data] + [tlsKey, callbackSecretFile].compactMap { $0 })
        defer { executor.cgroups?.remove() }
        let banner =
            "(data \(data), \(noLocal ? 0 : slots) local slot(s); \(jobs.describe(identity))"
            + (noLocal ? ")" : "; \(cgroups))")
        let host = interface
        let scheme = tlsCert == nil ? "http" : "https"
        let terminal =
            configuration.xterm.map { "terminal: xterm.js from \($0.folder)" }
            ?? "terminal in line mode: no xterm.js found; scripts/fetch-xterm.sh installs it"
        do {
            let localWorker = noLocal ? nil : localSlots(identity: identity, executor: executor, logger: logger)
            try await runHub(configuration: configuration, localWorker: localWorker, logger: logger) { port in
                say("xn hub listening on \(scheme)://\(host):\(port) \(banner)")
                let page = "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)/ui/"
                say("web page: \(page) (\(terminal))")
            }
        } catch let error as HubError {
            printError(error.description)
            throw ExitCode(1)
        } catch {
            printError("hub stopped: \(describeStartError(error))")
            throw ExitCode(1)
        }
    }

    /// xterm.js from `--xterm-dir` (which must hold it) or the first place that does.
    private func xterm() throws -> XtermAssets? {
        if let xtermDir {
            do {
                return try XtermAssets.load(folder: xtermDir)
            } catch {
                printError("--xterm-dir \(xtermDir): \(error)")
                throw ExitCode(64)
            }
        }
        return XtermAssets.load(from: XtermAssets.candidates(executable: Self.executablePath()))
    }

    /// This program's path as it was started (symlinks kept, so `.build/release/xn` finds
    /// `.build/share`), looked up in PATH when started by name.
    static func executablePath() -> String {
        let invoked = CommandLine.arguments.first ?? "xn"
        if invoked.contains("/") { return invoked }
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(folder)/\(invoked)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return invoked
    }

    /// The hub's own slots: an in-process worker that runs jobs as the hub's user (or `--user`).
    private func localSlots(identity: ProcessIdentity?, executor: PipeExecutor, logger: Logger) -> LocalWorker {
        var runner = RunnerConfiguration(name: WireProtocol.inProcessWorkerName, description: "hub")
        runner.drainGrace = .milliseconds(Int64(grace * 1000))
        runner.killGrace = .milliseconds(Int64(killGrace * 1000))
        runner.jobIdentity = identity
        runner.jobLimits = jobs.limits
        runner.isolatesJobs = jobs.isolate
        runner.passEnvironment = jobs.passedEnvironment
        return LocalWorker(configuration: runner, slots: slots, executor: executor, logger: logger)
    }

    private func describeStartError(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("Address already in use") || text.contains("EADDRINUSE") {
            return "cannot listen on \(interface):\(port): address already in use"
        }
        return text
    }
}
