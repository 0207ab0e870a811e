/// RFC 6455 §5.3 masking, eight bytes per step: NIO masks and unmasks one byte per step, which
/// was a quarter of the hub's CPU (unmasking) and a sixth of a worker's (masking) while output
/// streamed. Masking and unmasking are the same XOR.
public enum WebSocketMask {
    /// XORs `bytes` with the repeating 4-byte `key`, the first byte taking key byte `phase % 4`
    /// (a frame's payload masked in pieces continues where the last piece stopped).
    public static func apply(
        _ key: (UInt8, UInt8, UInt8, UInt8), phase: Int = 0, to bytes: UnsafeMutableRawBufferPointer
    ) {
        apply(key, phase: phase, from: UnsafeRawBufferPointer(bytes), to: bytes)
    }

    /// Writes `source` XORed with the key into `target` (at least as long): one pass where copying
    /// a buffer another holds and then masking it in place takes two.
    public static func apply(
        _ key: (UInt8, UInt8, UInt8, UInt8), phase: Int = 0, from source: UnsafeRawBufferPointer,
        to target: UnsafeMutableRawBufferPointer
    ) {
        precondition(target.count >= source.count, "the target is shorter than the source")
        let keyBytes = [key.0, key.1, key.2, key.3]
        // The key rotated so that the word at offset 0 starts with key byte `phase`.
        let rotated = (0..<8).map { keyBytes[($0 + phase) & 3] }
        let wide = rotated.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        var index = 0
        while index + 8 <= source.count {
            let word = source.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            target.storeBytes(of: word ^ wide, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < source.count {
            target[index] = source[index] ^ rotated[index & 7]
            index += 1
        }
    }
}
