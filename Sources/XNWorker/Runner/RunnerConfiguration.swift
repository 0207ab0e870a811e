import Foundation
public import XNExec

/// How a job runner starts its jobs, the same for the hub's own slots and a remote worker.
public struct RunnerConfiguration: Sendable {
    /// The worker name it announces ("local" for the hub's own slots).
    public var name: String
    /// Who it is in messages users read: "hub", or "worker gpu-1".
    public var description: String
    /// On shutdown, how long running jobs may go on before they are killed.
    public var drainGrace: Duration = .seconds(30)
    /// Between SIGTERM and SIGKILL when a job is canceled, times out or is drained.
    public var killGrace: Duration = .seconds(5)
    /// The user jobs run as (the runner must be root); nil: the runner's own.
    public var jobIdentity: ProcessIdentity?
    /// Resource limits of every job; a job may ask for less.
    public var jobLimits = ResourceLimits()
    /// Run every job in a sandbox (`--isolate`), not only those that ask.
    public var isolatesJobs = false
    /// Variables of the runner's environment passed to jobs beyond `JobEnvironment`'s set
    /// (`--pass-env`); its `XN_*` variables never are.
    public var passEnvironment: [String] = []
    /// The runner's own environment, where PATH, the locale and `passEnvironment` come from.
    public var environment = ProcessInfo.processInfo.environment

    public init(name: String, description: String) {
        self.name = name
        self.description = description
    }
}
