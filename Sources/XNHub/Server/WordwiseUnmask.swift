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
        frame.data = frame.data.unmaskedWordwise(key)
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
    /// The readable bytes XORed with the repeating 4-byte `key`, as RFC 6455 §5.3 says, in a new
    /// buffer: the frame's bytes still share the decoder's buffer, so unmasking them in place
    /// would copy them first and pass over them twice.
    func unmaskedWordwise(_ key: WebSocketMaskingKey) -> ByteBuffer {
        var plain = ByteBufferAllocator().buffer(capacity: readableBytes)
        _ = withUnsafeReadableBytes { source in
            plain.writeWithUnsafeMutableBytes(minimumWritableBytes: source.count) { target in
                WebSocketMask.apply((key[0], key[1], key[2], key[3]), from: source, to: target)
                return source.count
            }
        }
        return plain
    }
}
