import HummingbirdWebSocket
import NIOCore
import NIOWebSocket
import XNProtocol

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
        withUnsafeMutableReadableBytes { WebSocketMask.apply((key[0], key[1], key[2], key[3]), to: $0) }
    }
}
