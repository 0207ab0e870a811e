/// Everything known about one job: its spec, where it is, and how it ended.
public struct JobRecord: Sendable, Equatable {
    public var id: JobID
    /// Submission order, assigned by the store; the queue runs oldest first.
    public var seq: Int64
    public var spec: JobSpec
    public var state: JobState
    /// Milliseconds since the epoch.
    public var createdAt: Int64
    public var startedAt: Int64?
    public var finishedAt: Int64?
    public var exitCode: Int32?
    public var signal: Int32?
    /// Why the job did not run or did not end normally (spawn error, timeout, hub restart).
    public var err: String?
    /// Bytes kept of each stream (at most the output cap).
    public var stdoutBytes: Int
    public var stderrBytes: Int
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    /// Outcome of the callback delivery, once tried, for people.
    public var callbackStatus: String?
    /// The callback's delivery log; nil when the job has no callback.
    public var callbackDelivery: CallbackDelivery?
    /// CPU time and peak memory, once it ended (when its runner measured them).
    public var usage: JobUsage?
    /// Who ran it: "local" for the hub's own slots.
    public var worker: String?
    /// Attempts started so far (a lost worker's job may be queued again).
    public var attempts: Int
    /// Fencing token of the current attempt: reports carrying another token are refused.
    public var attemptToken: AttemptToken?
    /// Name of the token that submitted it; nil when the hub had no tokens.
    public var owner: String?

    public init(id: JobID, spec: JobSpec, createdAt: Int64) {
        self.id = id
        self.seq = 0
        self.spec = spec
        self.state = .queued
        self.createdAt = createdAt
        self.stdoutBytes = 0
        self.stderrBytes = 0
        self.stdoutTruncated = false
        self.stderrTruncated = false
        self.attempts = 0
    }
}

/// How a job ended, as the runner reports it to the store.
public struct JobOutcome: Sendable, Equatable {
    public var state: JobState
    public var exitCode: Int32?
    public var signal: Int32?
    public var err: String?
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    public var finishedAt: Int64
    /// What the job used, when its runner measured it.
    public var usage: JobUsage?

    public init(
        state: JobState, exitCode: Int32? = nil, signal: Int32? = nil, err: String? = nil,
        stdoutTruncated: Bool = false, stderrTruncated: Bool = false, finishedAt: Int64
    ) {
        precondition(state.isTerminal, "an outcome is a terminal state")
        self.state = state
        self.exitCode = exitCode
        self.signal = signal
        self.err = err
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
        self.finishedAt = finishedAt
    }
}
