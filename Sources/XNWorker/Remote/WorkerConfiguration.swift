public import XNExec
import XNProtocol

/// How a worker connects and what it offers.
public struct WorkerConfiguration: Sendable {
    /// The hub, as `ws://host:port` (or `http://`, which means the same here).
    public var hub: String
    public var name: String
    public var labels: [String: String] = [:]
    public var slots = 1
    /// Folder for output not yet acknowledged by the hub.
    public var spoolDirectory: String
    /// On shutdown, how long running jobs may go on before they are killed.
    public var drainGrace: Duration = .seconds(30)
    /// Between SIGTERM and SIGKILL when a job is canceled or times out.
    public var killGrace: Duration = .seconds(5)
    /// First and longest pause between reconnection attempts.
    public var reconnectMin: Duration = .milliseconds(100)
    public var reconnectMax: Duration = .seconds(3)
    public var version = xnVersion
    /// Bearer token (role worker or admin) for a hub that has tokens.
    public var token: String?
    /// PEM file of the CA that signed a `wss://` hub's certificate; nil: the system roots.
    public var caFile: String?
    /// The user jobs run as (the worker must be root); nil: the worker's own.
    public var jobIdentity: ProcessIdentity?
    /// Resource limits of every job.
    public var jobLimits = ResourceLimits()
    /// Run every job in a sandbox (`--isolate`).
    public var isolatesJobs = false
    /// Variables of the worker's environment passed to jobs (`--pass-env`).
    public var passEnvironment: [String] = []

    public init(hub: String, name: String, spoolDirectory: String) {
        self.hub = hub
        self.name = name
        self.spoolDirectory = spoolDirectory
    }

    /// How its runner starts jobs.
    var runner: RunnerConfiguration {
        var runner = RunnerConfiguration(name: name, description: "worker \(name)")
        runner.drainGrace = drainGrace
        runner.killGrace = killGrace
        runner.jobIdentity = jobIdentity
        runner.jobLimits = jobLimits
        runner.isolatesJobs = isolatesJobs
        runner.passEnvironment = passEnvironment
        return runner
    }

    /// The worker endpoint's URL.
    var endpoint: String {
        var base = hub
        if base.hasPrefix("http://") { base = "ws://" + base.dropFirst("http://".count) }
        if base.hasPrefix("https://") { base = "wss://" + base.dropFirst("https://".count) }
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/v1/worker"
    }
}

/// A worker that cannot go on (the hub refused it for good).
public struct WorkerError: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
