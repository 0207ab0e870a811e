import HummingbirdWebSocket
import NIOCore
import NIOWebSocket

/// Unmasks what workers send eight bytes at a time. NIO unmasks a byte per step, which cost a
/// quarter of the hub's CPU while a worker streamed output; this runs first and hands NIO frames
/// that are already plain.
struct WordwiseUnmask: WebSocketExtension {
    let name = "xn-wordwise-unmask"

    func processReceivedFrame(
        _ frame: WebSocketFrame, context: WebSocketExtensionContext
    ) async throws -> WebSocketFrame {
        guard let key = frame.maskKey, frame.extensionData == nil else { return frame }
        var frame = frame
        frame.data.unmaskWordwise(key)
        frame.maskKey = nil
        return frame
    }

    func processFrameToSend(_ frame: WebSocketFrame, context: WebSocketExtensionContext) async throws -> WebSocketFrame
    {
        frame
    }

    func shutdown() async {}
}

extension ByteBuffer {
    /// XORs the readable bytes with the repeating 4-byte `key`, as RFC 6455 §5.3 says.
    mutating func unmaskWordwise(_ key: WebSocketMaskingKey) {
        let keyBytes = [key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]
        let wide = keyBytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        withUnsafeMutableReadableBytes { bytes in
            var index = 0
            while index + 8 <= bytes.count {
                let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                bytes.storeBytes(of: word ^ wide, toByteOffset: index, as: UInt64.self)
                index += 8
            }
            while index < bytes.count {
                bytes[index] ^= keyBytes[index & 3]
                index += 1
            }
        }
    }
}
