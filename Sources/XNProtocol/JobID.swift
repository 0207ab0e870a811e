/// A job's id: 40 lowercase hex characters (160 random bits), the shape http-runner's route takes.
public struct JobID: Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    /// Accepts 40 hex characters in either case; anything else is not an id.
    public init?(_ text: String) {
        guard text.utf8.count == 40, text.utf8.allSatisfy({ $0.isHexDigit }) else { return nil }
        rawValue = text.lowercased()
    }

    /// A fresh unguessable id.
    public static func random() -> JobID {
        var generator = SystemRandomNumberGenerator()
        var text = ""
        text.reserveCapacity(40)
        for _ in 0..<5 {
            let word = generator.next() as UInt32
            let hex = String(word, radix: 16)
            text += String(repeating: "0", count: 8 - hex.count) + hex
        }
        return JobID(text)!
    }

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = JobID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a job id"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension UInt8 {
    var isHexDigit: Bool { hexValue != nil }

    /// The value of an ASCII hex digit in either case; nil for any other byte.
    @inlinable
    var hexValue: UInt8? {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): self - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): self - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): self - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
