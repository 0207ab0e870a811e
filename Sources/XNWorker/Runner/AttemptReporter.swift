import XNExec
import XNProtocol

/// Where a `JobRunner` reports its attempts: the link to the hub, whatever carries it (a spool
/// and a WebSocket for a remote worker, direct calls for the hub's own slots).
protocol AttemptReporter: Sendable {
    /// An attempt was accepted; prepare to carry its output. Throws when that is impossible (the
    /// attempt then ends without starting, with the error's description).
    func accepted(_ attempt: AttemptToken, job: JobID) async throws
    /// Its process exists.
    func started(_ attempt: AttemptToken, pid: Int32) async
    /// Output at `offset` of `stream`; returns once it is safe (spooled or stored), so a job that
    /// writes faster than its output is kept waits on its pipe. Throws when it cannot be kept.
    /// `shown`: `showOutput` saw it first.
    func output(
        _ attempt: AttemptToken, _ stream: OutputStreamKind, offset: Int, bytes: [UInt8], shown: Bool)
        async throws
    /// What may see the attempt's output on the reactor's thread before `output` has it, when the
    /// link can show it sooner that way (nil: `output` is the only way).
    func showOutput(_ attempt: AttemptToken, job: JobID) -> ShowOutput?
    /// Where an attempt that shows its output at once (someone may type into it) reports it from,
    /// when reporting there wakes one thread fewer (the link's event loop, which sends it); nil:
    /// the attempt's own task.
    func outputExecutor() async -> (any TaskExecutor)?
    /// It ended; called once per attempt, after its last output (also for one never accepted).
    func ended(_ attempt: AttemptToken, job: JobID, _ end: AttemptEnd) async
}
