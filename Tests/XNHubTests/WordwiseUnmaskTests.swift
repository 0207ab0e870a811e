import NIOCore
import NIOWebSocket
import Testing

@testable import XNHub

/// The hub's own unmasking must give exactly what NIO's byte-wise one gives.
struct WordwiseUnmaskTests {
    @Test(arguments: [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 1000, 65_537])
    func unmasksLikeNIO(length: Int) {
        let key = WebSocketMaskingKey([0x9c, 0x01, 0xff, 0x5a])!
        let plain = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        var masked = plain
        masked.webSocketMask(key)
        #expect(masked.unmaskedWordwise(key) == plain)
        // Also from a slice that does not start on an 8-byte boundary of its storage.
        var sliced = ByteBuffer(bytes: [0, 0, 0] + Array(masked.readableBytesView))
        sliced.moveReaderIndex(forwardBy: 3)
        #expect(sliced.unmaskedWordwise(key) == plain)
        // The masked bytes stay as they were: the decoder's buffer may still hold them.
        #expect(sliced.readableBytesView.elementsEqual(masked.readableBytesView))
    }
}
