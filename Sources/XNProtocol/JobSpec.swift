/// What a client asks to run. Args never pass through a shell.
public struct JobSpec: Sendable, Equatable, Codable {
    /// The command as the client sent it (a bare name or a path).
    public var command: String
    /// The file that runs, when the hub resolved `command` to one (a whitelist match): set by the
    /// hub, never taken from a request.
    public var program: String?
    public var args: [String]
    public var env: [String: String]
    public var cwd: String?
    /// Seconds after which the job's process group is killed (state `timed_out`).
    public var timeout: Double?
    /// Initial input, written to the job's stdin before it is closed.
    public var stdin: String?
    public var name: String?
    /// URL that receives the finished job (http-runner's shape) by POST.
    public var callback: String?
    /// Only workers carrying all these labels may run the job; empty runs anywhere.
    public var labels: [String: String]
    /// Times the job is queued again when its worker is lost.
    public var retries: Int
    /// Run under a pseudo-terminal of this size (its controlling terminal, stdin, stdout and
    /// stderr); all output then arrives on stdout. nil: pipes.
    public var tty: JobTerminal?
    /// Keep stdin open for input sent while the job runs (a `tty` job always is).
    public var interactive: Bool
    /// Resource limits of this job, within the runner's own.
    public var limits: JobLimits?
    /// Bytes kept per output stream, within the hub's `--max-output`.
    public var maxOutput: Int?
    /// Run in a sandbox: the system read-only, a /tmp of its own, its own PID namespace, no
    /// network unless `network`. A token or runner may force it.
    public var isolate: Bool = false
    /// An isolated job keeps the machine's network (where its token allows).
    public var network: Bool = false

    public init(
        command: String, args: [String] = [], env: [String: String] = [:], cwd: String? = nil,
        timeout: Double? = nil, stdin: String? = nil, name: String? = nil, callback: String? = nil,
        labels: [String: String] = [:], retries: Int = 0, tty: JobTerminal? = nil, interactive: Bool = false
    ) {
        self.command = command
        self.args = args
        self.env = env
        self.cwd = cwd
        self.timeout = timeout
        self.stdin = stdin
        self.name = name
        self.callback = callback
        self.labels = labels
        self.retries = retries
        self.tty = tty
        self.interactive = interactive
    }

    enum CodingKeys: String, CodingKey {
        case command, program, args, env, cwd, timeout, stdin, name, callback, labels, retries, tty, interactive, limits
        case isolate, network
        case maxOutput = "max_output"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(command, forKey: .command)
        try container.encodeIfPresent(program, forKey: .program)
        try container.encode(args, forKey: .args)
        try container.encode(env, forKey: .env)
        try container.encodeIfPresent(cwd, forKey: .cwd)
        try container.encodeIfPresent(timeout, forKey: .timeout)
        try container.encodeIfPresent(stdin, forKey: .stdin)
        try container.encodeIfPresent(name, forKey: .name)
        try container.encodeIfPresent(callback, forKey: .callback)
        try container.encode(labels, forKey: .labels)
        try container.encode(retries, forKey: .retries)
        try container.encodeIfPresent(tty, forKey: .tty)
        if interactive { try container.encode(interactive, forKey: .interactive) }
        try container.encodeIfPresent(limits, forKey: .limits)
        try container.encodeIfPresent(maxOutput, forKey: .maxOutput)
        if isolate { try container.encode(isolate, forKey: .isolate) }
        if network { try container.encode(network, forKey: .network) }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        command = try container.decode(String.self, forKey: .command)
        program = try container.decodeIfPresent(String.self, forKey: .program)
        args = try container.decodeIfPresent([String].self, forKey: .args) ?? []
        env = try container.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
        cwd = try container.decodeIfPresent(String.self, forKey: .cwd)
        timeout = try container.decodeIfPresent(Double.self, forKey: .timeout)
        stdin = try container.decodeIfPresent(String.self, forKey: .stdin)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        callback = try container.decodeIfPresent(String.self, forKey: .callback)
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        retries = try container.decodeIfPresent(Int.self, forKey: .retries) ?? 0
        tty = try container.decodeIfPresent(JobTerminal.self, forKey: .tty)
        interactive = try container.decodeIfPresent(Bool.self, forKey: .interactive) ?? false
        limits = try container.decodeIfPresent(JobLimits.self, forKey: .limits)
        maxOutput = try container.decodeIfPresent(Int.self, forKey: .maxOutput)
        isolate = try container.decodeIfPresent(Bool.self, forKey: .isolate) ?? false
        network = try container.decodeIfPresent(Bool.self, forKey: .network) ?? false
    }

    /// Whether input can reach the job while it runs.
    public var keepsInputOpen: Bool { interactive || tty != nil }

    /// What is executed: the resolved file, else the command as sent.
    public var executable: String { program ?? command }

    /// Bytes kept per output stream: what the job asks for (`max_output`), at most `limit`.
    public func outputCap(within limit: Int) -> Int {
        min(maxOutput ?? limit, limit)
    }

    /// Whether a runner with `offered` labels may run this job.
    public func runs(on offered: [String: String]) -> Bool {
        labels.allSatisfy { offered[$0.key] == $0.value }
    }
}

/// A job's terminal size in character cells.
public struct JobTerminal: Sendable, Equatable, Codable {
    public var rows: Int
    public var cols: Int

    /// What `"tty": true` gets.
    public static let standard = JobTerminal(rows: 24, cols: 80)

    public init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
    }
}

/// A request body that does not make a job, naming the field at fault.
public struct SpecError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The offending field, or nil when the body as a whole is wrong.
    public var field: String?
    public var message: String

    public init(field: String?, _ message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { message }
}

/// A job's own resource limits; nil leaves the runner's.
public struct JobLimits: Sendable, Equatable, Codable {
    /// CPU seconds (RLIMIT_CPU).
    public var cpu: Int?
    /// Address space in bytes (RLIMIT_AS).
    public var memory: Int?
    /// Open files (RLIMIT_NOFILE).
    public var files: Int?
    /// Processes of the job's user (RLIMIT_NPROC).
    public var procs: Int?
    /// CPU per wall-clock time, in percent of one CPU (a cgroup's CFS quota).
    public var cpuPercent: Int?

    public static let names = ["cpu", "memory", "files", "procs", "cpu_percent"]

    /// The limits only a cgroup of the job's own holds as asked (for all of the job together):
    /// a runner without cgroups refuses a job that asks for them.
    public static let cgroupNames: Set = ["memory", "procs", "cpu_percent"]

    enum CodingKeys: String, CodingKey {
        case cpu, memory, files, procs
        case cpuPercent = "cpu_percent"
    }

    public init(cpu: Int? = nil, memory: Int? = nil, files: Int? = nil, procs: Int? = nil, cpuPercent: Int? = nil) {
        self.cpu = cpu
        self.memory = memory
        self.files = files
        self.procs = procs
        self.cpuPercent = cpuPercent
    }

    /// Each limit by its field name.
    public var byName: [(name: String, value: Int?)] {
        [("cpu", cpu), ("memory", memory), ("files", files), ("procs", procs), ("cpu_percent", cpuPercent)]
    }
}
