import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import XNEventLoop

/// One HTTP/1.1 exchange with a hub, each on its own connection, with SwiftNIO's own HTTP codec.
///
/// Why not AsyncHTTPClient: `xn` is started anew for every command a script runs, and the first
/// use of AsyncHTTPClient's pool and state machines cost a `xn run -- true` about a third of its
/// CPU time (each first dynamic cast scans every conformance record of the binary). The CLI makes
/// one or two requests per process, so it needs no pool; this codec is also the one the attach
/// WebSocket's upgrade uses, so the second connection pays nothing again.
struct HubHTTP: Sendable {
    struct Response {
        var status: Int
        var body: [UInt8]
    }

    /// The client's one event loop thread, for its HTTP calls and its attach WebSocket: a CLI
    /// process has a connection or two at a time, and NIO's singleton starts a thread per core.
    static let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// That one loop as a task executor, for the task that writes an attach session's keys: it
    /// runs where the frames are written.
    static let loopExecutor = EventLoopTaskExecutor(eventLoops.next())

    /// Bytes of a body the client accepts (a job's output can be large).
    static let maxBody = 1 << 30

    let host: String
    let port: Int
    /// The path the hub's routes hang under (`https://example.com/xn` → "/xn").
    let prefix: String
    let tls: TLSConfiguration?
    /// The CA file the TLS configuration trusts (nil: the system roots), naming its cached context.
    let caFile: String?
    let serverName: String?

    /// Parses `baseURL` (`http://` or `https://`, host, optional port and path); an `https://` hub
    /// is trusted by the CA in `caFile`, else by the system roots.
    init(baseURL: String, caFile: String?) throws(ClientError) {
        guard let components = URLComponents(string: baseURL), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else { throw ClientError("invalid hub URL \(baseURL) (expected http://HOST:PORT or https://HOST:PORT)") }
        self.host = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        port = components.port ?? (scheme == "https" ? 443 : 80)
        prefix = components.percentEncodedPath
        self.caFile = caFile
        if scheme == "https" {
            var tls = try HubTLS.configuration(caFile: caFile) ?? TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            self.tls = tls
        } else {
            tls = nil
        }
        // An IP literal is never sent as SNI; the certificate is then checked against the address.
        serverName = HubTLS.isIPLiteral(self.host) ? nil : self.host
    }

    /// Sends one request and reads the whole answer, within `timeout`.
    func send(
        _ method: HTTPMethod, _ path: String, headers: [(String, String)], body: [UInt8]?, timeout: Duration
    ) async throws -> Response {
        let tls = try tls.map { try HubHTTP.context(for: $0, caFile: caFile) }
        let channel = try await ClientBootstrap(group: Self.eventLoops)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { [serverName] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: prefix + path)
        head.headers.add(name: "Host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body { head.headers.add(name: "Content-Length", value: String(body.count)) }
        let request = head
        return try await withThrowingTaskGroup(of: Response?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    // One write for the whole request: a hub that answers as soon as it has the
                    // head (any GET) and closes, as `Connection: close` asks, must not find a part
                    // of the request still to be written on a closed channel.
                    var parts: [HTTPClientRequestPart] = [.head(request)]
                    if let body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                    parts.append(.end(nil))
                    try await outbound.write(contentsOf: parts)
                    var status: Int?
                    var received = ByteBuffer()
                    for try await part in inbound {
                        switch part {
                        case .head(let answer):
                            status = Int(answer.status.code)
                        case .body(var piece):
                            guard received.readableBytes + piece.readableBytes <= Self.maxBody else {
                                throw HubHTTPError.tooLarge
                            }
                            received.writeBuffer(&piece)
                        case .end:
                            guard let status else { throw HubHTTPError.closedEarly }
                            return Response(status: status, body: Array(received.readableBytesView))
                        }
                    }
                    throw HubHTTPError.closedEarly
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let response = try await group.next() ?? nil else {
                channel.channel.close(promise: nil)
                throw HubHTTPError.timedOut
            }
            return response
        }
    }

    /// One TLS context per configuration for the process: building one reads the trust roots.
    private static let contexts = Mutex<[String: NIOSSLContext]>([:])

    private static func context(for configuration: TLSConfiguration, caFile: String?) throws -> NIOSSLContext {
        let key = caFile ?? ""
        return try contexts.withLock { contexts in
            if let context = contexts[key] { return context }
            let context = try NIOSSLContext(configuration: configuration)
            contexts[key] = context
            return context
        }
    }
}

/// How an exchange with the hub failed, in the words `HubClient.reason` gives people.
enum HubHTTPError: Error, CustomStringConvertible {
    case closedEarly, timedOut, tooLarge

    var description: String {
        switch self {
        case .closedEarly: "the hub closed the connection; does it serve https://?"
        case .timedOut: "timed out"
        case .tooLarge: "the answer is larger than \(HubHTTP.maxBody >> 20) MiB"
        }
    }
}
