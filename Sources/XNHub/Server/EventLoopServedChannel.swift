import HummingbirdCore
import Logging
import NIOCore
import XNEventLoop

/// Serves each connection on the event loop that reads it: its requests are parsed, handled and
/// answered on one thread, where they would otherwise be handed to Swift's thread pool and back
/// (two or more thread wake-ups per request, each tens of microseconds on a VM whose idle CPUs
/// halt). The actors a handler calls run there too; child tasks inherit the loop, unstructured
/// tasks do not.
struct EventLoopServedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger)
    }

    func handle(value: Base.Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await base.handle(value: value, logger: logger)
        }
    }
}

extension EventLoopServedChannel: HTTPChannelHandler where Base: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { base.responder }
}
