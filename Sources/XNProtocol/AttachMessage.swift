import Foundation

/// What an attached client sends the hub as a text message (`/v1/jobs/ID/attach`); typed input
/// travels as binary messages.
public enum AttachRequest: Sendable, Equatable {
    /// The client's terminal has a new size.
    case resize(JobTerminal)
    /// A signal by name (`INT`, `SIGINT`) or number, as the client wrote it.
    case signal(String)
    /// End the job's input.
    case closeStdin
    /// End the job (as a cancel does).
    case terminate
    /// Leave the job running and end this attach.
    case detach

    /// Sizes a client may ask for, per side.
    public static let terminalSides = 1...1000

    /// Parses one text message; the error says what is wrong, for the client.
    public static func parse(_ text: String) -> Result<AttachRequest, AttachProtocolError> {
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(text.utf8)) else {
            return .failure(AttachProtocolError("messages are JSON objects with a type"))
        }
        switch wire.type {
        case "resize":
            guard let rows = wire.rows, let cols = wire.cols, terminalSides.contains(rows), terminalSides.contains(cols)
            else { return .failure(AttachProtocolError("resize needs rows and cols from 1 to 1000")) }
            return .success(.resize(JobTerminal(rows: rows, cols: cols)))
        case "signal":
            guard let signal = wire.signal else {
                return .failure(AttachProtocolError("signal needs a signal name or number"))
            }
            return .success(.signal(signal.text))
        case "close_stdin": return .success(.closeStdin)
        case "terminate": return .success(.terminate)
        case "detach": return .success(.detach)
        default: return .failure(AttachProtocolError("unknown message type '\(wire.type)'"))
        }
    }

    /// The message as sent.
    public var text: String {
        var wire = Wire(type: "")
        switch self {
        case .resize(let size):
            wire = Wire(type: "resize")
            wire.rows = size.rows
            wire.cols = size.cols
        case .signal(let signal):
            wire = Wire(type: "signal")
            wire.signal = SignalValue(text: signal)
        case .closeStdin: wire = Wire(type: "close_stdin")
        case .terminate: wire = Wire(type: "terminate")
        case .detach: wire = Wire(type: "detach")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(wire)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// The JSON shape of every request: `type` says which of the other fields it uses.
    private struct Wire: Codable {
        var type: String
        var rows: Int?
        var cols: Int?
        var signal: SignalValue?

        init(type: String) {
            self.type = type
        }
    }

    /// A signal given by name (`"INT"`) or by number (`2`).
    private struct SignalValue: Codable {
        var text: String

        init(text: String) {
            self.text = text
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let number = try? container.decode(Int.self) {
                text = String(number)
            } else {
                text = try container.decode(String.self)
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            if let number = Int(text) { try container.encode(number) } else { try container.encode(text) }
        }
    }

    /// The name transcripts record it under (`resize`, `signal INT`, `terminate`).
    public var name: String {
        switch self {
        case .resize: "resize"
        case .signal(let signal): "signal \(signal)"
        case .closeStdin: "close_stdin"
        case .terminate: "terminate"
        case .detach: "detach"
        }
    }
}

/// What the hub sends an attached client as a text message; output travels as binary messages
/// (`[stream][offset: u64 big-endian][bytes]`).
public enum AttachNotice: Sendable, Equatable, Codable {
    /// The job ended; the hub closes the attach after this.
    case exit(JobView)
    /// Something the client sent was refused, or the job cannot be attached to.
    case error(String)

    private enum CodingKeys: String, CodingKey {
        case type, job, message
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "exit": self = .exit(try container.decode(JobView.self, forKey: .job))
        case "error": self = .error(try container.decode(String.self, forKey: .message))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container, debugDescription: "unknown notice type '\(type)'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .exit(let job):
            try container.encode("exit", forKey: .type)
            try container.encode(job, forKey: .job)
        case .error(let message):
            try container.encode("error", forKey: .type)
            try container.encode(message, forKey: .message)
        }
    }

    /// The notice as sent.
    public var text: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return #"{"message":"internal error","type":"error"}"# }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A text message on an attach that does not parse.
public struct AttachProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
