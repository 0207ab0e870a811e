import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing
import XNProtocol

@testable import XNClient

/// The worker's own masking: frames on the wire must be what NIO's decoder (as the hub runs it)
/// reads back, whatever their size and however the encoder splits them into buffers.
struct WordwiseMaskTests {
    static func bytes(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }
    }

    @Test("WebSocketMask.apply XORs with the key from any phase", arguments: [0, 1, 2, 3])
    func phases(phase: Int) {
        let key: (UInt8, UInt8, UInt8, UInt8) = (0x9c, 0x01, 0xff, 0x5a)
        let keyBytes = [key.0, key.1, key.2, key.3]
        for length in [0, 1, 7, 8, 9, 17, 1000] {
            let plain = Self.bytes(length, seed: 3)
            var masked = plain
            masked.withUnsafeMutableBytes { WebSocketMask.apply(key, phase: phase, to: $0) }
            #expect(masked == plain.indices.map { plain[$0] ^ keyBytes[($0 + phase) % 4] })
            // Into another buffer: the same bytes, the source untouched.
            var copied = [UInt8](repeating: 0, count: length)
            plain.withUnsafeBytes { source in
                copied.withUnsafeMutableBytes { WebSocketMask.apply(key, phase: phase, from: source, to: $0) }
            }
            #expect(copied == masked)
            #expect(plain == Self.bytes(length, seed: 3))
        }
    }

    @Test(
        "frames masked by the worker's handler decode to what was sent, each with a key",
        arguments: [0, 5, 125, 126, 65_535, 65_536, 300_000])
    func roundTrip(length: Int) throws {
        let channel = EmbeddedChannel()
        // Outbound order: the encoder first (it is nearer the tail), then the masking handler.
        try channel.pipeline.syncOperations.addHandler(WordwiseMaskingHandler())
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        let first = Self.bytes(length, seed: 1)
        // A payload with room before it: NIO's encoder then writes the header into the same buffer.
        var roomy = ByteBufferAllocator().buffer(capacity: length + 32)
        roomy.writeBytes([UInt8](repeating: 0, count: 16) + Self.bytes(length, seed: 2))
        roomy.moveReaderIndex(forwardBy: 16)
        let frames = [
            WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: first)),
            WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: "hello")),
            WebSocketFrame(fin: true, opcode: .binary, data: roomy),
        ]
        for frame in frames { try channel.writeOutbound(frame) }
        var wire = ByteBuffer()
        while var piece = try channel.readOutbound(as: ByteBuffer.self) { wire.writeBuffer(&piece) }

        let decoder = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
        try decoder.writeInbound(wire)
        for expected in [first, Array("hello".utf8), Self.bytes(length, seed: 2)] {
            let frame = try #require(try decoder.readInbound(as: WebSocketFrame.self))
            #expect(frame.maskKey != nil)
            #expect(Array(frame.unmaskedData.readableBytesView) == expected)
        }
        #expect(try decoder.readInbound(as: WebSocketFrame.self) == nil)
    }
}
