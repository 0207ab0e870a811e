import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore

extension HTTPServerBuilder {
    /// HTTP/1 with WebSocket upgrades (other upgrades and HTTP/2 answered as `ProtocolEdgeChannel`
    /// says), closing connections whose client is too slow: it has not
    /// finished its first request's head within `headerDeadline` (slowloris), or it has not read
    /// what the hub writes for `stallTimeout` (a reader that never reads holds nothing for long).
    static func http1WebSocketUpgradeGuardingSlowClients(
        webSocketRouter: Router<HubWebSocketContext>, configuration: HTTP1WebSocketUpgradeChannel.Configuration,
        headerDeadline: Duration, stallTimeout: Duration
    ) -> HTTPServerBuilder {
        let webSocketResponder = webSocketRouter.buildResponder()
        let wouldUpgrade: UpgradeHeaderFilter.Check = { request, channel, logger in
            let context = HubWebSocketContext(source: .init(channel: channel, logger: logger))
            let response = try? await webSocketResponder.respond(
                to: Request(head: request, body: .init(buffer: ByteBuffer())), context: context)
            return response?.status == .ok
        }
        return .init { responder in
            EventLoopServedChannel(
                base: ProtocolEdgeChannel(
                    base: SlowClientChannel(
                        base: HTTP1WebSocketUpgradeChannel(
                            responder: responder, webSocketResponder: webSocketResponder, configuration: configuration),
                        headerDeadline: headerDeadline, stallTimeout: stallTimeout),
                    wouldUpgrade: wouldUpgrade))
        }
    }
}

/// Puts a `SlowClientHandler` in front of the base channel's handlers (behind TLS, when the
/// builder is wrapped in it, so it sees the request's plain bytes).
struct SlowClientChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let headerDeadline: Duration
    let stallTimeout: Duration

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                SlowClientHandler(headerDeadline: TimeAmount(headerDeadline), stallTimeout: TimeAmount(stallTimeout)))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Base.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension SlowClientChannel: HTTPChannelHandler where Base: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { base.responder }
}

/// Closes a connection whose first request head ("…\r\n\r\n") does not arrive in time, or that
/// stays unwritable (its client not reading) too long.
final class SlowClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let headerDeadline: TimeAmount
    private let stallTimeout: TimeAmount
    private var headerTimer: Scheduled<Void>?
    private var stallTimer: Scheduled<Void>?
    /// Bytes of "\r\n\r\n" matched so far; 4 once the head is complete.
    private var matched = 0

    init(headerDeadline: TimeAmount, stallTimeout: TimeAmount) {
        self.headerDeadline = headerDeadline
        self.stallTimeout = stallTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        headerTimer = context.eventLoop.scheduleTask(in: headerDeadline) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headerTimer?.cancel()
        stallTimer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if matched < 4 {
            let buffer = unwrapInboundIn(data)
            let terminator: [UInt8] = [13, 10, 13, 10]
            for byte in buffer.readableBytesView {
                matched = byte == terminator[matched] ? matched + 1 : (byte == 13 ? 1 : 0)
                if matched == 4 {
                    headerTimer?.cancel()
                    headerTimer = nil
                    break
                }
            }
        }
        context.fireChannelRead(data)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stallTimer?.cancel()
            stallTimer = nil
        } else if stallTimer == nil {
            let channel = context.channel
            stallTimer = context.eventLoop.scheduleTask(in: stallTimeout) { channel.close(promise: nil) }
        }
        context.fireChannelWritabilityChanged()
    }
}
