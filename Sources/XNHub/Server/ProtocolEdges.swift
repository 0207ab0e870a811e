import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// Puts the hub's answers to requests at the edge of HTTP/1.1 into the pipeline: an HTTP/2
/// connection preface is refused at once, and a first request whose `Upgrade` is not a
/// WebSocket upgrade, or is one the WebSocket routes would refuse, is served as plain HTTP/1.1,
/// so the HTTP routes answer it (with the 401, 403 or 404 that applies).
struct ProtocolEdgeChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    /// Whether the WebSocket routes would upgrade this request.
    let wouldUpgrade: UpgradeHeaderFilter.Check

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(HTTP2PrefaceRefusal())
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }.flatMapThrowing { value in
            // NIO's upgrade handler drops the head of a request whose Upgrade it cannot serve
            // (`curl --http2`'s h2c, or Upgrade without Connection: upgrade) and the client gets
            // no answer: such a request reaches it without the Upgrade header instead.
            let operations = channel.pipeline.syncOperations
            let decoder = try operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try operations.addHandler(
                UpgradeHeaderFilter(wouldUpgrade: wouldUpgrade, logger: logger), position: .after(decoder))
            return value
        }
    }

    func handle(value: Base.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension ProtocolEdgeChannel: HTTPChannelHandler where Base: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { base.responder }
}

/// Removes `Upgrade` from the first request's head unless it asks for a WebSocket with
/// `Connection: upgrade` that the WebSocket routes would accept (asked before NIO's upgrade
/// handler sees the head; later parts wait), then leaves the pipeline: only a connection's
/// first request may upgrade.
final class UpgradeHeaderFilter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias Check = @Sendable (HTTPRequest, any Channel, Logger) async -> Bool

    private enum State {
        case first
        /// Asking the WebSocket routes; what arrives meanwhile, in order.
        case asking([NIOAny])
        case done
    }

    private let wouldUpgrade: Check
    private let logger: Logger
    private var state = State.first

    init(wouldUpgrade: @escaping Check, logger: Logger) {
        self.wouldUpgrade = wouldUpgrade
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .done:
            context.fireChannelRead(data)
        case .asking(var waiting):
            waiting.append(data)
            state = .asking(waiting)
        case .first:
            guard case .head(var head) = unwrapInboundIn(data), head.headers.contains(name: "upgrade") else {
                finish(context: context, with: [data])
                return
            }
            guard Self.isWebSocketUpgrade(head.headers), let request = Self.request(head) else {
                head.headers.remove(name: "upgrade")
                finish(context: context, with: [wrapInboundOut(.head(head))])
                return
            }
            state = .asking([])
            let check = wouldUpgrade
            let channel = context.channel
            let logger = logger
            let answer = context.eventLoop.makePromise(of: Bool.self)
            answer.completeWithTask { await check(request, channel, logger) }
            answer.futureResult.assumeIsolated().whenComplete { result in
                guard case .asking(let waiting) = self.state else { return }
                if (try? result.get()) != true { head.headers.remove(name: "upgrade") }
                self.finish(context: context, with: [self.wrapInboundOut(.head(head))] + waiting)
            }
        }
    }

    private func finish(context: ChannelHandlerContext, with parts: [NIOAny]) {
        state = .done
        for part in parts { context.fireChannelRead(part) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    static func isWebSocketUpgrade(_ headers: HTTPHeaders) -> Bool {
        let upgrade = headers[canonicalForm: "upgrade"].map { $0.lowercased() }
        let connection = headers[canonicalForm: "connection"].map { $0.lowercased() }
        return upgrade.contains("websocket") && connection.contains("upgrade")
    }

    /// The head as the routes see a request; nil when a header cannot be one.
    static func request(_ head: HTTPRequestHead) -> HTTPRequest? {
        var fields = HTTPFields()
        for (name, value) in head.headers {
            guard let name = HTTPField.Name(name) else { return nil }
            fields.append(HTTPField(name: name, value: value))
        }
        return HTTPRequest(
            method: HTTPRequest.Method(head.method.rawValue) ?? .get, scheme: nil,
            authority: head.headers["host"].first, path: head.uri, headerFields: fields)
    }
}

/// Answers a client that opens with the HTTP/2 connection preface (`curl --http2-prior-knowledge`)
/// with HTTP/2's own refusal, a SETTINGS frame and GOAWAY with HTTP_1_1_REQUIRED, and closes,
/// instead of leaving it waiting for the head deadline. Leaves the pipeline after the first read.
final class HTTP2PrefaceRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let preface = Array("PRI * HTTP/2.0\r\n".utf8)
    static let reason = Array("xn hubs speak HTTP/1.1".utf8)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard buffer.readableBytesView.starts(with: Self.preface) else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        var answer = context.channel.allocator.buffer(capacity: 9 + 9 + 8 + Self.reason.count)
        // SETTINGS: empty payload, type 4, no flags, stream 0.
        answer.writeBytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
        // GOAWAY: type 7, stream 0; last stream 0, error HTTP_1_1_REQUIRED (0xd), a reason.
        let length = 8 + Self.reason.count
        answer.writeBytes([UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), 7, 0])
        answer.writeInteger(UInt32(0))
        answer.writeInteger(UInt32(0))
        answer.writeInteger(UInt32(0xd))
        answer.writeBytes(Self.reason)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(answer)).whenComplete { _ in channel.close(promise: nil) }
    }
}
