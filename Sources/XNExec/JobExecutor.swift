#if canImport(Glibc)
    import Glibc
#else
    import Darwin
#endif

/// What to start: a plain description of one process, independent of jobs and the wire.
public struct ProcessRequest: Sendable {
    /// The program: a path, or a bare name looked up in PATH. Never passed through a shell.
    public var command: String
    public var arguments: [String]
    /// Variables set on top of the runner's own environment.
    public var environment: [String: String]
    public var workingDirectory: String?
    /// Bytes written to the process's stdin before it is closed; nil gives an empty stdin.
    public var standardInput: [UInt8]?
    /// Bytes kept per stream; the rest is read, counted and dropped so memory stays bounded.
    public var outputLimit: Int

    public init(
        command: String, arguments: [String] = [], environment: [String: String] = [:],
        workingDirectory: String? = nil, standardInput: [UInt8]? = nil, outputLimit: Int = 16 << 20
    ) {
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.standardInput = standardInput
        self.outputLimit = outputLimit
    }
}

/// Which output stream a chunk came from.
public enum OutputStreamKind: String, Sendable, Codable, CaseIterable {
    case stdout, stderr
}

/// A run of bytes read from one stream, in order.
public struct OutputChunk: Sendable, Equatable {
    public var stream: OutputStreamKind
    public var bytes: [UInt8]

    public init(stream: OutputStreamKind, bytes: [UInt8]) {
        self.stream = stream
        self.bytes = bytes
    }
}

/// How a process ended: a non-zero exit is data, not an error.
public enum ProcessTermination: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)
}

/// The end of a process, with how much each stream wrote (kept or not).
public struct ProcessResult: Sendable, Equatable {
    public var termination: ProcessTermination
    public var stdoutBytes: Int
    public var stderrBytes: Int

    public init(termination: ProcessTermination, stdoutBytes: Int, stderrBytes: Int) {
        self.termination = termination
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
    }
}

/// A process that could not be started (no such file, not executable, bad cwd).
public struct SpawnError: Error, Sendable, CustomStringConvertible {
    /// The errno behind the failure, when there is one.
    public var code: Int32
    public var description: String

    public init(code: Int32, description: String) {
        self.code = code
        self.description = description
    }
}

/// Starts processes. The hub's local slots, the worker and the tests all go through this.
public protocol JobExecutor: Sendable {
    /// Starts the process or throws `SpawnError`; once it returns, the process is running.
    func start(_ request: ProcessRequest) throws(SpawnError) -> any RunningProcess
}

/// A started process: its output, its process group and its end.
public protocol RunningProcess: AnyObject, Sendable {
    var pid: Int32 { get }
    /// Every chunk of kept output in the order read; finishes once both streams are drained.
    /// Read it to the end: unread output holds the process back (see `ProcessOutput`).
    var output: ProcessOutput { get }
    /// Sends `signal` to the process's whole process group.
    func signal(_ signal: Int32)
    /// Waits for the process to end and its output to be drained.
    func result() async -> ProcessResult
    /// The result if the process ends within `timeout`, else nil (the process keeps running).
    func result(timeout: Duration) async -> ProcessResult?
}

extension RunningProcess {
    /// SIGTERM to the group, SIGKILL to whatever of it is left after `grace`, then the result.
    public func terminate(grace: Duration) async -> ProcessResult {
        signal(SIGTERM)
        _ = await result(timeout: grace)
        // Always kill what is left of the group: a grandchild may ignore SIGTERM or outlive its parent.
        signal(SIGKILL)
        return await result()
    }
}
