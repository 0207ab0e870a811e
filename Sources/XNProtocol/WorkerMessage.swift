/// What a worker tells its hub: JSON text frames on the WebSocket, plain values on the in-process
/// link of the hub's own slots. Output travels separately (`OutputPiece`, binary frames).
public enum WorkerMessage: Sendable, Equatable {
    /// The first message: who the worker is and which attempts it still holds.
    case hello(WorkerHello)
    case heartbeat
    /// An attempt's process exists.
    case started(AttemptStarted)
    /// An attempt ended; sent only after every byte of its output.
    case ended(AttemptEnded)
    /// The worker takes no new jobs (it is shutting down).
    case draining
}

/// A worker's introduction.
public struct WorkerHello: Sendable, Equatable, Codable {
    public var name: String
    public var labels: [String: String]
    public var slots: Int
    public var version: String
    /// Attempts the worker holds: running, or ended and not yet acknowledged by the hub.
    public var attempts: [HeldAttempt]
    /// The worker takes a job's input as binary frames (`InputFrame`); absent from older workers,
    /// which are sent `input` messages with base64 instead.
    public var inputFrames: Bool?

    public init(
        name: String, labels: [String: String] = [:], slots: Int, version: String, attempts: [HeldAttempt] = [],
        inputFrames: Bool? = nil
    ) {
        self.name = name
        self.labels = labels
        self.slots = slots
        self.version = version
        self.attempts = attempts
        self.inputFrames = inputFrames
    }
}

/// An attempt a worker holds when it (re)connects, with its end if it already ended.
public struct HeldAttempt: Sendable, Equatable, Codable {
    public var attempt: AttemptToken
    public var job: JobID
    public var end: AttemptEnd?

    public init(attempt: AttemptToken, job: JobID, end: AttemptEnd? = nil) {
        self.attempt = attempt
        self.job = job
        self.end = end
    }
}

/// An attempt's process started.
public struct AttemptStarted: Sendable, Equatable, Codable {
    public var attempt: AttemptToken
    public var pid: Int32

    public init(attempt: AttemptToken, pid: Int32) {
        self.attempt = attempt
        self.pid = pid
    }
}

/// An attempt ended.
public struct AttemptEnded: Sendable, Equatable, Codable {
    public var attempt: AttemptToken
    public var end: AttemptEnd

    public init(attempt: AttemptToken, end: AttemptEnd) {
        self.attempt = attempt
        self.end = end
    }
}

extension WorkerMessage: Codable {
    private enum Kind: String, Codable {
        case hello, heartbeat, started, ended, draining
    }

    private enum TypeKey: String, CodingKey {
        case type
    }

    public init(from decoder: any Decoder) throws {
        let kind = try decoder.container(keyedBy: TypeKey.self).decode(Kind.self, forKey: .type)
        switch kind {
        case .hello: self = .hello(try WorkerHello(from: decoder))
        case .heartbeat: self = .heartbeat
        case .started: self = .started(try AttemptStarted(from: decoder))
        case .ended: self = .ended(try AttemptEnded(from: decoder))
        case .draining: self = .draining
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: TypeKey.self)
        switch self {
        case .hello(let hello):
            try container.encode(Kind.hello, forKey: .type)
            try hello.encode(to: encoder)
        case .heartbeat:
            try container.encode(Kind.heartbeat, forKey: .type)
        case .started(let started):
            try container.encode(Kind.started, forKey: .type)
            try started.encode(to: encoder)
        case .ended(let ended):
            try container.encode(Kind.ended, forKey: .type)
            try ended.encode(to: encoder)
        case .draining:
            try container.encode(Kind.draining, forKey: .type)
        }
    }
}

/// A run of one attempt's output at its offset in its stream: a binary frame on the WebSocket
/// (`OutputFrame`), a plain value on the in-process link.
public struct OutputPiece: Sendable, Equatable {
    public var attempt: AttemptToken
    public var stream: OutputStreamKind
    public var offset: Int
    public var bytes: [UInt8]

    public init(attempt: AttemptToken, stream: OutputStreamKind, offset: Int, bytes: [UInt8]) {
        self.attempt = attempt
        self.stream = stream
        self.offset = offset
        self.bytes = bytes
    }
}
