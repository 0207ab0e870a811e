import Foundation
public import NIOCore
import NIOHTTP1
import NIOPosix
public import NIOSSL
public import NIOWebSocket
import Synchronization
import XNEventLoop
import XNProtocol

/// A WebSocket client connection to the hub on NIO directly, for the link that carries a job's
/// output: every frame is masked eight bytes at a time (NIO's encoder masks one byte per step, a
/// sixth of a streaming worker's CPU) and the socket has TCP_NODELAY, so keystrokes are not held.
public enum HubWebSocket {
    /// A message from the hub.
    public enum Message: Sendable {
        case text(String)
        case binary(ByteBuffer)
    }

    /// The hub answered the upgrade with something else (a refused token: 401 or 403).
    public struct UpgradeRefused: Error, CustomStringConvertible {
        public var description: String { "the hub refused the WebSocket upgrade" }
    }

    enum UpgradeResult: Sendable {
        case upgraded(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        /// The connection stays open after a refusal: it is closed here.
        case refused(any Channel)
    }

    /// Connects to `url` (`ws://` or `wss://`), upgrades with `headers`, runs `body` with the
    /// connection and closes it when `body` returns or throws.
    public static func connect<Result: Sendable>(
        to url: String, headers: [(String, String)], tls: TLSConfiguration?, serverName: String?,
        maxFrameSize: Int, _ body: @Sendable (inout Inbound, Outbound) async throws -> Result
    ) async throws -> Result {
        guard let parsed = URLComponents(string: url), let host = parsed.host, !host.isEmpty,
            parsed.scheme == "ws" || parsed.scheme == "wss"
        else { throw URLError(.badURL) }
        let secure = parsed.scheme == "wss"
        let port = parsed.port ?? (secure ? 443 : 80)
        let context = try (secure ? (tls ?? .makeClientConfiguration()) : nil).map {
            try NIOSSLContext(configuration: $0)
        }
        var requestHeaders = HTTPHeaders([("Host", parsed.port.map { "\(host):\($0)" } ?? host)])
        requestHeaders.add(contentsOf: headers)
        let path =
            (parsed.percentEncodedPath.isEmpty ? "/" : parsed.percentEncodedPath)
            + (parsed.percentEncodedQuery.map { "?\($0)" } ?? "")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: requestHeaders)

        let upgrade = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        let tlsHandler = try NIOSSLClientHandler(context: context, serverHostname: serverName ?? host)
                        try channel.pipeline.syncOperations.addHandler(tlsHandler)
                    }
                    let upgrader = NIOTypedWebSocketClientUpgrader<UpgradeResult>(maxFrameSize: maxFrameSize) {
                        channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            // NIO's encoder writes frames unmasked; this masks them on their way out.
                            let operations = channel.pipeline.syncOperations
                            let encoder = try operations.handler(type: WebSocketFrameEncoder.self)
                            try operations.addHandler(WordwiseMaskingHandler(), position: .before(encoder))
                            try operations.addHandler(
                                NIOWebSocketFrameAggregator(
                                    minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 16,
                                    maxAccumulatedFrameSize: maxFrameSize))
                            return .upgraded(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                        }
                    }
                    var configuration = NIOUpgradableHTTPClientPipelineConfiguration(
                        upgradeConfiguration: NIOTypedHTTPClientUpgradeConfiguration(
                            upgradeRequestHead: head, upgraders: [upgrader],
                            notUpgradingCompletionHandler: { $0.eventLoop.makeSucceededFuture(.refused($0)) }))
                    configuration.leftOverBytesStrategy = .forwardBytes
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: configuration)
                }
            }
        let channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>
        switch try await upgrade.get() {
        case .upgraded(let upgraded): channel = upgraded
        case .refused(let refused):
            try? await refused.close()
            throw UpgradeRefused()
        }
        // The connection's tasks run on its event loop: a frame read or a frame to write wakes no
        // other thread (on a VM, tens of microseconds each, twice per keystroke's echo).
        let executor = EventLoopTaskExecutor(channel.channel.eventLoop)
        return try await withTaskExecutorPreference(executor) {
            try await channel.executeThenClose { frames, writer in
                let outbound = Outbound(
                    writer: writer, allocator: channel.channel.allocator, closing: Closing(), executor: executor)
                var inbound = Inbound(frames: frames.makeAsyncIterator(), outbound: outbound)
                return try await body(&inbound, outbound)
            }
        }
    }

    /// Messages from the hub; answers pings and a close on the way.
    public struct Inbound {
        var frames: NIOAsyncChannelInboundStream<WebSocketFrame>.AsyncIterator
        let outbound: Outbound

        /// The next text or binary message; nil once the hub closed the connection.
        public mutating func next() async throws -> Message? {
            while let frame = try await frames.next() {
                switch frame.opcode {
                case .text: return .text(String(buffer: frame.unmaskedData))
                case .binary: return .binary(frame.unmaskedData)
                case .ping: try await outbound.send(.pong, frame.unmaskedData)
                case .connectionClose:
                    // Answered with the same code, unless this side said goodbye first.
                    if outbound.closing.begin() {
                        let code = frame.unmaskedData.getSlice(at: frame.unmaskedData.readerIndex, length: 2)
                        try? await outbound.send(.connectionClose, code ?? outbound.allocator.buffer(capacity: 0))
                    }
                    return nil
                default: continue
                }
            }
            return nil
        }
    }

    /// Sends messages to the hub; safe to use from several tasks (each frame goes out whole).
    public struct Outbound: Sendable {
        let writer: NIOAsyncChannelOutboundWriter<WebSocketFrame>
        let allocator: ByteBufferAllocator
        let closing: Closing
        /// The connection's event loop, where its tasks run: work that ends in a frame to send
        /// wakes no other thread when it runs there too.
        public let executor: any TaskExecutor

        public func text(_ text: String) async throws {
            try await send(.text, allocator.buffer(string: text))
        }

        public func binary(_ bytes: ByteBuffer) async throws {
            try await send(.binary, bytes)
        }

        /// Says goodbye with `code`; the connection closes when the `connect` body returns.
        public func close(_ code: WebSocketErrorCode) async throws {
            guard closing.begin() else { return }
            var data = allocator.buffer(capacity: 2)
            data.write(webSocketErrorCode: code)
            try await send(.connectionClose, data)
        }

        func send(_ opcode: WebSocketOpcode, _ data: ByteBuffer) async throws {
            try await writer.write(WebSocketFrame(fin: true, opcode: opcode, data: data))
        }
    }
}

/// Whether a close frame went out: one side sends at most one.
final class Closing: Sendable {
    private let sent = Atomic(false)

    /// True the first time only.
    func begin() -> Bool { !sent.exchange(true, ordering: .relaxed) }
}

/// Masks the frames NIO's `WebSocketFrameEncoder` writes (unmasked) in front of it: sets each
/// header's mask bit, adds a fresh random key and XORs the payload a word at a time.
///
/// It reads the encoder's output as a stream: a header (always whole within one buffer), then as
/// many payload bytes as the header says, possibly in the same buffer, possibly over several.
final class WordwiseMaskingHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Payload bytes of the current frame still to come.
    private var remaining = 0
    private var key: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
    /// Where in the key the next payload byte is.
    private var phase = 0
    private var random = SystemRandomNumberGenerator()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var buffer = unwrapOutboundIn(data)
        var pieces: [ByteBuffer] = []
        while buffer.readableBytes > 0 {
            if remaining == 0 {
                guard let header = maskedHeader(from: &buffer, allocator: context.channel.allocator) else {
                    promise?.fail(NIOWebSocketError.invalidFrameLength)
                    context.close(promise: nil)
                    return
                }
                pieces.append(header)
                continue
            }
            let count = min(remaining, buffer.readableBytes)
            // Masked into a new buffer: the payload's storage is still the frame's, so masking it
            // in place would first copy it, then pass over it again.
            var masked = context.channel.allocator.buffer(capacity: count)
            _ = buffer.withUnsafeReadableBytes { source in
                masked.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
                    WebSocketMask.apply(
                        key, phase: phase, from: UnsafeRawBufferPointer(rebasing: source[..<count]), to: target)
                    return count
                }
            }
            pieces.append(masked)
            buffer.moveReaderIndex(forwardBy: count)
            remaining -= count
            phase = (phase + count) & 3
        }
        guard let last = pieces.popLast() else {
            promise?.succeed(())
            return
        }
        for piece in pieces { context.write(wrapOutboundOut(piece), promise: nil) }
        context.write(wrapOutboundOut(last), promise: promise)
    }

    /// Reads an unmasked frame header and returns it masked with a new key; nil when the buffer
    /// does not hold a whole header (NIO's encoder never splits one).
    private func maskedHeader(from buffer: inout ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard let first = buffer.readInteger(as: UInt8.self), let second = buffer.readInteger(as: UInt8.self)
        else { return nil }
        var out = allocator.buffer(capacity: 14)
        out.writeInteger(first)
        out.writeInteger(second | 0x80)
        switch second & 0x7F {
        case 126:
            guard let length = buffer.readInteger(as: UInt16.self) else { return nil }
            out.writeInteger(length)
            remaining = Int(length)
        case 127:
            guard let length = buffer.readInteger(as: UInt64.self) else { return nil }
            out.writeInteger(length)
            remaining = Int(length)
        case let length:
            remaining = Int(length)
        }
        let word = random.next() as UInt32
        key = (
            UInt8(truncatingIfNeeded: word), UInt8(truncatingIfNeeded: word >> 8),
            UInt8(truncatingIfNeeded: word >> 16), UInt8(truncatingIfNeeded: word >> 24)
        )
        out.writeBytes([key.0, key.1, key.2, key.3])
        phase = 0
        return out
    }
}
