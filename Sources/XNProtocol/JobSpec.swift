/// What a client asks to run. Args never pass through a shell.
public struct JobSpec: Sendable, Equatable, Codable {
    public var command: String
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

    public init(
        command: String, args: [String] = [], env: [String: String] = [:], cwd: String? = nil,
        timeout: Double? = nil, stdin: String? = nil, name: String? = nil, callback: String? = nil,
        labels: [String: String] = [:], retries: Int = 0
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
    }

    enum CodingKeys: String, CodingKey {
        case command, args, env, cwd, timeout, stdin, name, callback, labels, retries
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        command = try container.decode(String.self, forKey: .command)
        args = try container.decodeIfPresent([String].self, forKey: .args) ?? []
        env = try container.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
        cwd = try container.decodeIfPresent(String.self, forKey: .cwd)
        timeout = try container.decodeIfPresent(Double.self, forKey: .timeout)
        stdin = try container.decodeIfPresent(String.self, forKey: .stdin)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        callback = try container.decodeIfPresent(String.self, forKey: .callback)
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        retries = try container.decodeIfPresent(Int.self, forKey: .retries) ?? 0
    }

    /// Whether a runner with `offered` labels may run this job.
    public func runs(on offered: [String: String]) -> Bool {
        labels.allSatisfy { offered[$0.key] == $0.value }
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
