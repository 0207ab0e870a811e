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

    public init(
        command: String, args: [String] = [], env: [String: String] = [:], cwd: String? = nil,
        timeout: Double? = nil, stdin: String? = nil, name: String? = nil, callback: String? = nil
    ) {
        self.command = command
        self.args = args
        self.env = env
        self.cwd = cwd
        self.timeout = timeout
        self.stdin = stdin
        self.name = name
        self.callback = callback
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
