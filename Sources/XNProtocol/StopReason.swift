/// Why a job's process was stopped before it ended by itself: the one reason the runner acts on,
/// reports with the attempt's end, and the hub turns into the job's state and `err`.
public enum StopReason: Sendable, Equatable, Codable {
    /// Someone canceled the job (`xn cancel`, terminate from an attach).
    case canceled
    /// It ran longer than its `timeout`.
    case timedOut(seconds: Double)
    /// Its runner (the hub's own slots, or a worker) shut down and the grace period ran out.
    case shutdown
    /// The hub moved past this attempt (its worker was declared lost): nobody records its end.
    case superseded
    /// Its output could not be kept (the hub's store or the worker's spool failed).
    case outputLost(String)

    private enum CodingKeys: String, CodingKey {
        case reason, seconds, message
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let reason = try container.decode(String.self, forKey: .reason)
        switch reason {
        case "canceled": self = .canceled
        case "timed_out": self = .timedOut(seconds: try container.decode(Double.self, forKey: .seconds))
        case "shutdown": self = .shutdown
        case "superseded": self = .superseded
        case "output_lost": self = .outputLost(try container.decode(String.self, forKey: .message))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .reason, in: container, debugDescription: "unknown stop reason '\(reason)'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .canceled: try container.encode("canceled", forKey: .reason)
        case .timedOut(let seconds):
            try container.encode("timed_out", forKey: .reason)
            try container.encode(seconds, forKey: .seconds)
        case .shutdown: try container.encode("shutdown", forKey: .reason)
        case .superseded: try container.encode("superseded", forKey: .reason)
        case .outputLost(let message):
            try container.encode("output_lost", forKey: .reason)
            try container.encode(message, forKey: .message)
        }
    }
}

/// Seconds as a user wrote them: `5s`, `0.5s`.
public func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
}
