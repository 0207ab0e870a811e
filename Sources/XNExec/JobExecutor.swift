public import XNProtocol

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
    /// The environment the process starts from; nil: the runner's own (jobs get a small one,
    /// see `JobEnvironment`).
    public var baseEnvironment: [String: String]?
    /// Variables set on top of `baseEnvironment`.
    public var environment: [String: String]
    public var workingDirectory: String?
    /// Bytes written to the process's stdin before it is closed; nil gives an empty stdin.
    public var standardInput: [UInt8]?
    /// Bytes kept per stream; the rest is read, counted and dropped so memory stays bounded.
    public var outputLimit: Int
    /// Run under a pseudo-terminal of this size, as the process's controlling terminal and its
    /// stdin, stdout and stderr (all output then arrives as `.stdout`). nil: pipes.
    public var terminal: TerminalSize?
    /// Keep stdin open after `standardInput` for `RunningProcess.send`. A terminal always is.
    public var keepsInputOpen: Bool
    /// The user the process runs as (needs root); nil: the runner's own.
    public var identity: ProcessIdentity?
    /// Resource limits set in the process before it starts. Where the executor gives jobs a
    /// control group, memory and processes are held there, for the whole job, instead.
    public var limits: ResourceLimits = ResourceLimits()
    /// The limits the job itself asked for that only a control group holds (`limits.memory`):
    /// an executor without cgroups refuses the request rather than run it with less.
    public var limitsNeedingCgroup: [String] = []
    /// Run in a sandbox of its own (see `Sandbox`); nil: like any process of the runner.
    public var isolation: Isolation?
    /// Set as `XN_JOB_ID` in the process's environment (a job's id; a random one when nil). Its
    /// descendants inherit it, so ones that left its process group and session are still found
    /// and killed when it is terminated.
    public var tag: String?
    /// Sees each chunk of output as it is handed over, at its offset in its stream, before
    /// `output` yields it: for showing output at once (a terminal attached through the hub), not
    /// for keeping it. Called on the reactor's thread, so it must not wait.
    public var showOutput: ShowOutput?

    public init(
        command: String, arguments: [String] = [], environment: [String: String] = [:],
        workingDirectory: String? = nil, standardInput: [UInt8]? = nil, outputLimit: Int = 16 << 20,
        terminal: TerminalSize? = nil, keepsInputOpen: Bool = false
    ) {
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.standardInput = standardInput
        self.outputLimit = outputLimit
        self.terminal = terminal
        self.keepsInputOpen = keepsInputOpen
    }
}

/// Shows one chunk of a process's output: its stream, its offset there, its bytes.
public typealias ShowOutput = @Sendable (_ stream: OutputStreamKind, _ offset: Int, _ bytes: [UInt8]) -> Void

/// A user and group to run a process as.
public struct ProcessIdentity: Sendable, Equatable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32
    /// Supplementary groups, as the user would get at login (`getgrouplist`); never the runner's.
    public var groups: [UInt32]

    public init(name: String, uid: UInt32, gid: UInt32, groups: [UInt32]? = nil) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.groups = groups ?? [gid]
    }

    /// The user `name` of this machine with its groups, or nil when there is none.
    public static func user(named name: String) -> ProcessIdentity? {
        guard let entry = getpwnam(name) else { return nil }
        let uid = entry.pointee.pw_uid
        let gid = entry.pointee.pw_gid
        var count: Int32 = 16
        var groups = [gid_t](repeating: 0, count: Int(count))
        while getgrouplist(name, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count) + 16)
            count = Int32(groups.count)
        }
        return ProcessIdentity(name: name, uid: uid, gid: gid, groups: Array(groups.prefix(Int(count))))
    }
}

/// Limits on what a process (and, for processes, its user) may use; nil leaves one as inherited.
public struct ResourceLimits: Sendable, Equatable {
    /// CPU time in seconds (RLIMIT_CPU): SIGXCPU, then SIGKILL.
    public var cpuSeconds: Int?
    /// Address space in bytes (RLIMIT_AS): allocations beyond it fail.
    public var addressSpaceBytes: Int?
    /// Open file descriptors (RLIMIT_NOFILE).
    public var openFiles: Int?
    /// Processes of the job's user (RLIMIT_NPROC; not enforced for root): a fork bomb stops there.
    public var processes: Int?
    /// CPU per wall-clock time in percent of one CPU; only a control group holds it.
    public var cpuPercent: Int?

    public init(
        cpuSeconds: Int? = nil, addressSpaceBytes: Int? = nil, openFiles: Int? = nil, processes: Int? = nil,
        cpuPercent: Int? = nil
    ) {
        self.cpuSeconds = cpuSeconds
        self.addressSpaceBytes = addressSpaceBytes
        self.openFiles = openFiles
        self.processes = processes
        self.cpuPercent = cpuPercent
    }

    public var isEmpty: Bool { self == ResourceLimits() }
}

/// How a process is isolated from the machine it runs on.
public struct Isolation: Sendable, Equatable {
    /// Keep the machine's network; without it the process has only a loopback of its own.
    public var network: Bool

    public init(network: Bool = false) {
        self.network = network
    }
}

/// A terminal's size in character cells.
public struct TerminalSize: Sendable, Equatable, Codable {
    public var rows: UInt16
    public var columns: UInt16

    public init(rows: UInt16, columns: UInt16) {
        self.rows = rows
        self.columns = columns
    }
}

/// Why input or a resize did not reach a process.
public enum InputError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Its stdin was never kept open, was closed, or the process ended.
    case closed
    /// More than `InputQueue.limit` bytes wait for the process to read them.
    case full
    /// A resize of a process that has no terminal.
    case notATerminal

    public var description: String {
        switch self {
        case .closed: "the job's input is closed"
        case .full: "the job is not reading its input fast enough"
        case .notATerminal: "the job has no terminal"
        }
    }
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
    /// CPU time and peak memory, when the executor measured them.
    public var usage: ResourceUsage?

    public init(
        termination: ProcessTermination, stdoutBytes: Int, stderrBytes: Int, usage: ResourceUsage? = nil
    ) {
        self.termination = termination
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
        self.usage = usage
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
    /// Sends `signal` to the process's whole process group, and under a terminal also to the
    /// terminal's foreground process group. While the process runs, TERM, KILL and HUP also reach
    /// its descendants that left the group (see `ProcessRequest.tag`).
    func signal(_ signal: Int32)
    /// SIGTERM to everything of the process, SIGKILL to whatever is left after `grace`, then the result.
    func terminate(grace: Duration) async -> ProcessResult
    /// Queues `bytes` for the process's stdin (or terminal), after everything sent before.
    func send(_ bytes: [UInt8]) throws(InputError)
    /// Ends the input once what was sent is written: closes stdin, or on a terminal types Ctrl-D.
    func closeInput()
    /// Sets the terminal's size; the kernel sends the program SIGWINCH.
    func resize(_ size: TerminalSize) throws(InputError)
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
