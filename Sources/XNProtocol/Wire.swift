/// The worker ↔ hub protocol: JSON text frames for control, binary frames for output.
///
///     worker                                hub
///       │── hello (name, labels, slots, attempts it holds) ─▶│
///       │◀─ welcome (heartbeat) | refused (reason) ──────────│
///       │◀─ assign (attempt, job, spec) ─────────────────────│
///       │── started (attempt, pid) ─────────────────────────▶│
///       │══ output frames (attempt, stream, offset, bytes) ═▶│
///       │◀─ ack (attempt, stdout, stderr: bytes stored) ─────│
///       │── ended (attempt, how it ended, bytes written) ───▶│
///       │◀─ ack (attempt, ended: true) ───────────────────────│  the worker forgets it
///       │◀─ cancel (attempt) | kill (attempt, reason) ───────│
///       │◀─ signal (attempt, signal) ────────────────────────│  to the job's process group
///       │◀─ input (attempt, data | ended | size) ─────────────│  stdin bytes, end of input, resize
///
/// Every attempt of a job has its own token; the hub ignores reports for tokens it moved past
/// and tells the worker to kill them, so a late worker cannot overwrite a result.
public enum WireProtocol {
    /// The WebSocket subprotocol; a different one is refused with a reason.
    public static let subprotocol = "xn.v1"
    /// The hub's route for workers.
    public static let workerPath = "/v1/worker"
    /// Largest frame either side accepts.
    public static let maxFrameBytes = 1 << 20
}

/// One control message; `type` says which fields are set.
public struct WireMessage: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        // worker → hub
        case hello, heartbeat, started, ended, draining
        // hub → worker
        case welcome, refused, assign, cancel, kill, ack, signal, input
    }

    public var type: Kind
    public var name: String?
    public var labels: [String: String]?
    public var slots: Int?
    public var version: String?
    /// hello: the attempts the worker holds (running, or ended and not yet acknowledged).
    public var attempts: [AttemptReport]?
    /// The attempt token, 16 hex digits.
    public var attempt: String?
    public var job: String?
    public var spec: JobSpec?
    public var pid: Int32?
    /// signal: the signal number for the attempt's process group.
    public var signal: Int32?
    /// input: bytes for the job's stdin, base64.
    public var data: String?
    /// input: the terminal's new size.
    public var size: JobTerminal?
    public var end: AttemptEnd?
    /// ack: bytes of each stream the hub has stored.
    public var stdout: Int?
    public var stderr: Int?
    /// ack: the hub recorded the end; the worker may forget the attempt.
    public var ended: Bool?
    public var reason: String?
    /// welcome: seconds between heartbeats the hub expects.
    public var heartbeat: Double?

    public init(_ type: Kind) {
        self.type = type
    }
}

/// An attempt a worker reports in its hello.
public struct AttemptReport: Codable, Sendable, Equatable {
    public var attempt: String
    public var job: String
    public var end: AttemptEnd?

    public init(attempt: String, job: String, end: AttemptEnd?) {
        self.attempt = attempt
        self.job = job
        self.end = end
    }
}

/// How a process ended on a worker, and how many bytes each stream wrote in all.
public struct AttemptEnd: Codable, Sendable, Equatable {
    public var exitCode: Int32?
    public var signal: Int32?
    /// Why it could not start, or was stopped.
    public var err: String?
    public var timedOut: Bool
    public var canceled: Bool
    public var stdoutBytes: Int
    public var stderrBytes: Int
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool

    public init(
        exitCode: Int32? = nil, signal: Int32? = nil, err: String? = nil, timedOut: Bool = false,
        canceled: Bool = false, stdoutBytes: Int = 0, stderrBytes: Int = 0, stdoutTruncated: Bool = false,
        stderrTruncated: Bool = false
    ) {
        self.exitCode = exitCode
        self.signal = signal
        self.err = err
        self.timedOut = timedOut
        self.canceled = canceled
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
    }
}

/// A binary frame of output: stream (1 stdout, 2 stderr), attempt token, offset, then the bytes.
public struct OutputFrame: Sendable, Equatable {
    public static let headerSize = 17
    public var stream: UInt8
    public var attempt: UInt64
    public var offset: UInt64
    public var bytes: [UInt8]

    public init(stream: UInt8, attempt: UInt64, offset: UInt64, bytes: [UInt8]) {
        self.stream = stream
        self.attempt = attempt
        self.offset = offset
        self.bytes = bytes
    }

    /// The header and bytes as sent.
    public func encoded() -> [UInt8] {
        Self.header(stream: stream, attempt: attempt, offset: offset) + bytes
    }

    /// The 17 header bytes; the bytes of output follow them.
    public static func header(stream: UInt8, attempt: UInt64, offset: UInt64) -> [UInt8] {
        var out: [UInt8] = [stream]
        out.reserveCapacity(headerSize)
        for shift in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: attempt >> UInt64(shift)))
        }
        for shift in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: offset >> UInt64(shift)))
        }
        return out
    }

    /// Parses a header; nil when it is too short or names no known stream.
    public static func parseHeader(_ frame: some Collection<UInt8>) -> (stream: UInt8, attempt: UInt64, offset: UInt64)?
    {
        guard frame.count >= headerSize else { return nil }
        var iterator = frame.makeIterator()
        let stream = iterator.next()!
        guard stream == 1 || stream == 2 else { return nil }
        var attempt: UInt64 = 0
        var offset: UInt64 = 0
        for _ in 0..<8 { attempt = attempt << 8 | UInt64(iterator.next()!) }
        for _ in 0..<8 { offset = offset << 8 | UInt64(iterator.next()!) }
        guard offset <= UInt64(Int.max) else { return nil }
        return (stream, attempt, offset)
    }

    /// Parses a frame; nil when it is too short or names no known stream.
    public init?(decoding frame: some Collection<UInt8>) {
        guard let header = Self.parseHeader(frame) else { return nil }
        self.stream = header.stream
        self.attempt = header.attempt
        self.offset = header.offset
        self.bytes = Array(frame.dropFirst(Self.headerSize))
    }
}

/// Attempt tokens on the wire: 16 lowercase hex digits.
public enum AttemptToken {
    public static func format(_ token: UInt64) -> String {
        let hex = String(token, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    public static func parse(_ text: String) -> UInt64? {
        guard text.utf8.count == 16 else { return nil }
        return UInt64(text, radix: 16)
    }

    public static func random() -> UInt64 {
        var generator = SystemRandomNumberGenerator()
        return generator.next() | 1
    }
}

/// A connected worker as `GET /v1/workers` shows it.
public struct WorkerView: Codable, Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    public var slots: Int
    public var running: Int
    public var connectedAt: String
    public var lastHeartbeat: String
    public var version: String
    public var draining: Bool

    enum CodingKeys: String, CodingKey {
        case name, labels, slots, running, version, draining
        case connectedAt = "connected_at", lastHeartbeat = "last_heartbeat"
    }

    public init(
        name: String, labels: [String: String], slots: Int, running: Int, connectedAt: Int64, lastHeartbeat: Int64,
        version: String, draining: Bool
    ) {
        self.name = name
        self.labels = labels
        self.slots = slots
        self.running = running
        self.connectedAt = Timestamp.format(connectedAt)
        self.lastHeartbeat = Timestamp.format(lastHeartbeat)
        self.version = version
        self.draining = draining
    }
}

/// The body of `GET /v1/workers`.
public struct WorkerList: Codable, Sendable, Equatable {
    public var workers: [WorkerView]

    public init(workers: [WorkerView]) {
        self.workers = workers
    }
}
