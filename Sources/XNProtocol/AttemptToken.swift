/// The fencing token of one attempt of a job: 64 random bits, 16 lowercase hex digits on the wire.
/// Every attempt gets a new one, so a report carrying an old token is recognised and refused.
public struct AttemptToken: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// Parses 16 hex digits; anything else is not a token. One pass over the bytes, inlinable: the
    /// store reads a token with every job it reads, and the generic `UInt64(_:radix:)` behind a
    /// call into this module took 0.9% of a hub's CPU under submissions.
    @inlinable
    public init?(hex text: some StringProtocol) {
        var value: UInt64 = 0
        var count = 0
        for byte in text.utf8 {
            guard let digit = byte.hexValue else { return nil }
            count += 1
            guard count <= 16 else { return nil }
            value = value << 4 | UInt64(digit)
        }
        guard count == 16 else { return nil }
        rawValue = value
    }

    /// A fresh token (never zero).
    public static func random() -> AttemptToken {
        var generator = SystemRandomNumberGenerator()
        return AttemptToken(generator.next() | 1)
    }

    public var description: String {
        let hex = String(rawValue, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    public static func < (lhs: AttemptToken, rhs: AttemptToken) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let token = AttemptToken(hex: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not an attempt token"))
        }
        self = token
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
