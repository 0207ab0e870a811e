import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization
import XNProtocol

/// The hub's request context: Hummingbird's basics plus who is on the other end, for the audit log.
public struct HubRequestContext: RequestContext, RemoteAddressRequestContext, CallerContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    var caller = Caller.open

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// The same for WebSocket routes (attach, workers).
public struct HubWebSocketContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext, CallerContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    var caller = Caller.open
    private let socket: SocketReference

    /// Where hummingbird-websocket puts the route's handler, and this context with it, for the
    /// upgrade. That reference is held by the context it holds, a cycle: every upgraded connection
    /// kept its context and the route's handler (about 1.6 KB an attach, and with the handler the
    /// scheduler and store) for as long as the hub ran. The connection's close breaks it.
    public var webSocket: WebSocketHandlerReference<Self> { socket.reference.withLock { $0 } ?? .init() }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        let socket = SocketReference()
        source.channel.closeFuture.whenComplete { _ in socket.reference.withLock { $0 = nil } }
        self.socket = socket
    }

    /// The handler reference of one connection, let go when the connection closes.
    private final class SocketReference: Sendable {
        let reference = Mutex<WebSocketHandlerReference<HubWebSocketContext>?>(.init())
    }
}

extension RemoteAddressRequestContext {
    /// "127.0.0.1:52144", or "?" when unknown.
    var peer: String {
        guard let address = remoteAddress else { return "?" }
        return "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
    }
}

/// One line per submission, cancel, signal and attach: what, which job, from where. It is logged
/// whatever `--log-level` says.
struct AuditLog: Sendable {
    private let logger: Logger

    init(_ logger: Logger) {
        var audit = logger
        audit.logLevel = .notice
        self.logger = audit
    }

    func submitted(_ job: JobRecord, from peer: String) {
        let words = ([job.spec.command] + job.spec.args).map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }
        var details = ["command": words.joined(separator: " ")]
        if job.spec.tty != nil { details["tty"] = "yes" }
        if let owner = job.owner { details["token"] = owner }
        record("submit", job: job.id.rawValue, from: peer, details)
    }

    /// `by`: the caller's token name, when the hub has tokens.
    func record(
        _ action: String, job: String, from peer: String, by token: String? = nil, _ details: [String: String] = [:]
    ) {
        var metadata: Logger.Metadata = ["job": .string(Self.escaped(job)), "from": .string(Self.escaped(peer))]
        if let token { metadata["token"] = .string(Self.escaped(token)) }
        for (key, value) in details { metadata[key] = .string(Self.escaped(value)) }
        logger.notice("audit: \(action)", metadata: metadata)
    }

    /// `text` on one line with nothing a terminal acts on: a command, argument or name carrying a
    /// newline cannot forge an audit line, nor an escape sequence rewrite the screen that reads it.
    static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _
            where scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value)
                || scalar.value == 0x2028 || scalar.value == 0x2029:
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
