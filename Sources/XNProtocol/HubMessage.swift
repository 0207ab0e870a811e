import Foundation

/// What a hub tells a worker: JSON text frames on the WebSocket, plain values on the in-process
/// link of the hub's own slots.
public enum HubMessage: Sendable, Equatable {
    /// The hello was accepted; heartbeats are expected this often.
    case welcome(Welcome)
    /// The hello (or a later message) was refused; the connection ends.
    case refused(reason: String)
    /// Run this attempt of a job.
    case assign(Assignment)
    /// The hub has stored each stream of an attempt up to these offsets: where to resume.
    case ack(OutputAck)
    /// The hub recorded the attempt's end: the worker may forget it.
    case forget(AttemptToken)
    /// Stop the attempt: the job was canceled.
    case cancel(AttemptToken)
    /// Kill the attempt and report nothing: the hub moved past it.
    case kill(AttemptToken, reason: String)
    /// Send a signal to the attempt's process group.
    case signal(AttemptToken, Int32)
    /// Bytes for the attempt's stdin (or terminal).
    case input(AttemptToken, [UInt8])
    /// End the attempt's input.
    case closeInput(AttemptToken)
    /// Set the attempt's terminal size.
    case resize(AttemptToken, JobTerminal)

    /// The attempt the message is about, if any.
    public var attempt: AttemptToken? {
        switch self {
        case .welcome, .refused: nil
        case .assign(let assignment): assignment.attempt
        case .ack(let ack): ack.attempt
        case .forget(let token), .cancel(let token), .kill(let token, _), .signal(let token, _), .input(let token, _),
            .closeInput(let token), .resize(let token, _):
            token
        }
    }
}

/// The hub's answer to a hello.
public struct Welcome: Sendable, Equatable, Codable {
    /// Seconds between heartbeats the hub expects.
    public var heartbeat: Double

    public init(heartbeat: Double) {
        self.heartbeat = heartbeat
    }
}

/// One attempt of a job, for a worker to run.
public struct Assignment: Sendable, Equatable, Codable {
    public var attempt: AttemptToken
    public var job: JobID
    public var spec: JobSpec
    /// Bytes kept per stream; the rest is counted and dropped.
    public var outputLimit: Int

    enum CodingKeys: String, CodingKey {
        case attempt, job, spec
        case outputLimit = "output_limit"
    }

    public init(attempt: AttemptToken, job: JobID, spec: JobSpec, outputLimit: Int) {
        self.attempt = attempt
        self.job = job
        self.spec = spec
        self.outputLimit = outputLimit
    }
}

/// How much of each stream of an attempt the hub has stored.
public struct OutputAck: Sendable, Equatable, Codable {
    public var attempt: AttemptToken
    public var stdout: Int
    public var stderr: Int

    public init(attempt: AttemptToken, stdout: Int, stderr: Int) {
        self.attempt = attempt
        self.stdout = stdout
        self.stderr = stderr
    }
}

extension HubMessage: Codable {
    private enum Kind: String, Codable {
        case welcome, refused, assign, ack, forget, cancel, kill, signal, input
        case closeInput = "close_input"
        case resize
    }

    private enum CodingKeys: String, CodingKey {
        case type, attempt, reason, signal, data, rows, cols
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try container.decode(Kind.self, forKey: .type)
        func token() throws -> AttemptToken { try container.decode(AttemptToken.self, forKey: .attempt) }
        switch kind {
        case .welcome: self = .welcome(try Welcome(from: decoder))
        case .refused: self = .refused(reason: try container.decode(String.self, forKey: .reason))
        case .assign: self = .assign(try Assignment(from: decoder))
        case .ack: self = .ack(try OutputAck(from: decoder))
        case .forget: self = .forget(try token())
        case .cancel: self = .cancel(try token())
        case .kill: self = .kill(try token(), reason: try container.decode(String.self, forKey: .reason))
        case .signal: self = .signal(try token(), try container.decode(Int32.self, forKey: .signal))
        case .input:
            let text = try container.decode(String.self, forKey: .data)
            guard let data = Data(base64Encoded: text) else {
                throw DecodingError.dataCorruptedError(forKey: .data, in: container, debugDescription: "not base64")
            }
            self = .input(try token(), Array(data))
        case .closeInput: self = .closeInput(try token())
        case .resize:
            let size = JobTerminal(
                rows: try container.decode(Int.self, forKey: .rows), cols: try container.decode(Int.self, forKey: .cols)
            )
            self = .resize(try token(), size)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .welcome(let welcome):
            try container.encode(Kind.welcome, forKey: .type)
            try welcome.encode(to: encoder)
        case .refused(let reason):
            try container.encode(Kind.refused, forKey: .type)
            try container.encode(reason, forKey: .reason)
        case .assign(let assignment):
            try container.encode(Kind.assign, forKey: .type)
            try assignment.encode(to: encoder)
        case .ack(let ack):
            try container.encode(Kind.ack, forKey: .type)
            try ack.encode(to: encoder)
        case .forget(let token):
            try container.encode(Kind.forget, forKey: .type)
            try container.encode(token, forKey: .attempt)
        case .cancel(let token):
            try container.encode(Kind.cancel, forKey: .type)
            try container.encode(token, forKey: .attempt)
        case .kill(let token, let reason):
            try container.encode(Kind.kill, forKey: .type)
            try container.encode(token, forKey: .attempt)
            try container.encode(reason, forKey: .reason)
        case .signal(let token, let signal):
            try container.encode(Kind.signal, forKey: .type)
            try container.encode(token, forKey: .attempt)
            try container.encode(signal, forKey: .signal)
        case .input(let token, let bytes):
            try container.encode(Kind.input, forKey: .type)
            try container.encode(token, forKey: .attempt)
            try container.encode(Data(bytes).base64EncodedString(), forKey: .data)
        case .closeInput(let token):
            try container.encode(Kind.closeInput, forKey: .type)
            try container.encode(token, forKey: .attempt)
        case .resize(let token, let size):
            try container.encode(Kind.resize, forKey: .type)
            try container.encode(token, forKey: .attempt)
            try container.encode(size.rows, forKey: .rows)
            try container.encode(size.cols, forKey: .cols)
        }
    }
}
