import Foundation

/// How one attempt of a job ended where it ran, as its runner reports it to the hub.
public struct AttemptEnd: Sendable, Equatable, Codable {
    /// What became of the process.
    public enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
        /// It never ran: the spawn failed (no such file, permission), with the reason.
        case notStarted(String)
    }

    public var termination: Termination
    /// Why the runner stopped it, if it did.
    public var stop: StopReason?
    /// Bytes each stream wrote in all, kept or not.
    public var stdoutBytes: Int
    public var stderrBytes: Int
    /// CPU time and peak memory, when the runner measured them.
    public var usage: JobUsage?
    /// The memory limit the job's cgroup held when the OOM killer killed a process of it.
    public var outOfMemoryLimit: Int?

    public init(
        _ termination: Termination, stop: StopReason? = nil, stdoutBytes: Int = 0, stderrBytes: Int = 0,
        usage: JobUsage? = nil, outOfMemoryLimit: Int? = nil
    ) {
        self.termination = termination
        self.stop = stop
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
        self.usage = usage
        self.outOfMemoryLimit = outOfMemoryLimit
    }

    /// Bytes `stream` wrote in all.
    public func bytes(_ stream: OutputStreamKind) -> Int {
        stream == .stdout ? stdoutBytes : stderrBytes
    }

    private enum CodingKeys: String, CodingKey {
        case exitCode = "exit_code", signal
        case notStarted = "not_started"
        case stop
        case stdoutBytes = "stdout_bytes", stderrBytes = "stderr_bytes"
        case usage, outOfMemoryLimit = "out_of_memory_limit"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let code = try container.decodeIfPresent(Int32.self, forKey: .exitCode) {
            termination = .exited(code)
        } else if let signal = try container.decodeIfPresent(Int32.self, forKey: .signal) {
            termination = .signaled(signal)
        } else if let reason = try container.decodeIfPresent(String.self, forKey: .notStarted) {
            termination = .notStarted(reason)
        } else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "an attempt's end needs exit_code, signal or not_started"))
        }
        stop = try container.decodeIfPresent(StopReason.self, forKey: .stop)
        stdoutBytes = try container.decode(Int.self, forKey: .stdoutBytes)
        stderrBytes = try container.decode(Int.self, forKey: .stderrBytes)
        usage = try container.decodeIfPresent(JobUsage.self, forKey: .usage)
        outOfMemoryLimit = try container.decodeIfPresent(Int.self, forKey: .outOfMemoryLimit)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch termination {
        case .exited(let code): try container.encode(code, forKey: .exitCode)
        case .signaled(let signal): try container.encode(signal, forKey: .signal)
        case .notStarted(let reason): try container.encode(reason, forKey: .notStarted)
        }
        try container.encodeIfPresent(stop, forKey: .stop)
        try container.encode(stdoutBytes, forKey: .stdoutBytes)
        try container.encode(stderrBytes, forKey: .stderrBytes)
        try container.encodeIfPresent(usage, forKey: .usage)
        try container.encodeIfPresent(outOfMemoryLimit, forKey: .outOfMemoryLimit)
    }
}

extension JobOutcome {
    /// How a job ended, from how its attempt ended: the one place a result becomes a state and an
    /// `err`, whether the job ran on the hub's own slots or on a worker.
    ///
    /// - Parameters:
    ///   - stop: why it was stopped; the hub's own reason (a cancel it sent) wins over the runner's.
    ///   - runner: who ran it, for messages: "hub", or "worker NAME".
    ///   - outputCap: bytes kept per stream; more is flagged truncated.
    public init(_ end: AttemptEnd, stop: StopReason?, runner: String, outputCap: Int, at time: Int64) {
        switch stop ?? end.stop {
        case .canceled?:
            self.init(state: .canceled, err: "canceled", finishedAt: time)
        case .timedOut(let seconds)?:
            self.init(state: .timedOut, err: "timed out after \(formatSeconds(seconds))", finishedAt: time)
        case .shutdown?:
            self.init(
                state: .lost,
                err: "\(runner) shut down before the job finished; it was killed after the grace period",
                finishedAt: time)
        case .superseded?:
            self.init(state: .lost, err: "\(runner) was told to stop this attempt", finishedAt: time)
        case .outputLost(let message)?:
            self.init(state: .failed, err: message, finishedAt: time)
        case nil:
            switch end.termination {
            case .exited(let code):
                self.init(state: code == 0 ? .succeeded : .failed, finishedAt: time)
            case .signaled(let signal):
                let err =
                    end.outOfMemoryLimit.map { "killed: out of memory (limit \(formatBytes($0)))" }
                    ?? SignalName.death(signal)
                self.init(state: .failed, err: err, finishedAt: time)
            case .notStarted(let reason):
                self.init(state: .failed, err: reason, finishedAt: time)
            }
        }
        switch end.termination {
        case .exited(let code): exitCode = code
        case .signaled(let signal): self.signal = signal
        case .notStarted: break
        }
        stdoutTruncated = end.stdoutBytes > outputCap
        stderrTruncated = end.stderrBytes > outputCap
        usage = end.usage
    }
}

/// `256 MiB`, `1.5 GiB`, `512 KiB`, `100 bytes`: a size for people.
public func formatBytes(_ bytes: Int) -> String {
    let units = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
    for (size, unit) in units where bytes >= size {
        let value = Double(bytes) / Double(size)
        let text = value == value.rounded() ? String(Int(value)) : String(format: "%.1f", value)
        return "\(text) \(unit)"
    }
    return "\(bytes) bytes"
}
