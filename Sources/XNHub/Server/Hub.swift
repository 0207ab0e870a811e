import Foundation
import HTTPTypes
public import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
public import Logging
import NIOCore
import NIOSSL
import Synchronization
public import XNProtocol
public import XNStore

/// Builds a hub: its store, its scheduler, and the HTTP application. `localWorker` is the hub's
/// own slots (nil: only remote workers run jobs); `store` replaces the SQLite store of the data
/// folder (tests that make the store fail).
///
/// `onListening` receives the bound port (useful with port 0).
public func buildApplication(
    configuration: HubConfiguration, localWorker: (any InProcessWorker)?,
    store injected: (any JobStore & TranscriptStore & TokenStore)? = nil, logger: Logger,
    onListening: @escaping @Sendable (Int) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
    let tls = try serverTLS(configuration)
    let store: any JobStore & TranscriptStore & TokenStore = try injected ?? openStore(configuration)
    let scheduler = Scheduler(store: store, configuration: configuration, localWorker: localWorker, logger: logger)
    let audit = AuditLog(logger)
    let tokens = TokenRegistry(store: store)
    let router = buildRouter(
        scheduler: scheduler, store: store, configuration: configuration, audit: audit, tokens: tokens)
    let sockets = buildSocketRouter(
        scheduler: scheduler, store: store, configuration: configuration, audit: audit, tokens: tokens, logger: logger)
    let webSocket = HTTP1WebSocketUpgradeChannel.Configuration(
        http1: .init(idleTimeout: TimeAmount(configuration.idleTimeout)),
        ws: .init(
            maxFrameSize: WireProtocol.maxFrameBytes, extensions: [.nonNegotiatedExtension { WordwiseUnmask() }]))
    let plain = HTTPServerBuilder.http1WebSocketUpgradeGuardingSlowClients(
        webSocketRouter: sockets, configuration: webSocket, headerDeadline: configuration.headerDeadline,
        stallTimeout: configuration.stallTimeout)
    var app = Application(
        router: router,
        server: try tls.map { try HTTPServerBuilder.tls(plain, tlsConfiguration: $0) } ?? plain,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        onServerRunning: { channel in
            await onListening(channel.localAddress?.port ?? configuration.port)
        },
        logger: logger)
    app.addServices(scheduler)
    app.beforeServerStarts {
        try await tokens.load()
        try checkExposure(configuration, tokens: tokens, logger: logger)
        try await scheduler.recover()
    }
    return app
}

/// Runs a hub until SIGINT or SIGTERM, then shuts it down gracefully.
public func runHub(
    configuration: HubConfiguration, localWorker: (any InProcessWorker)?, logger: Logger,
    onListening: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws {
    let app = try buildApplication(
        configuration: configuration, localWorker: localWorker, logger: logger, onListening: onListening)
    try await app.runService()
}

/// The server's TLS configuration from its PEM files, checked now so a bad file stops the start
/// with a reason instead of failing the first connection.
func serverTLS(_ configuration: HubConfiguration) throws -> TLSConfiguration? {
    guard let certificate = configuration.tlsCertificate, let key = configuration.tlsKey else { return nil }
    do {
        let chain = try NIOSSLCertificate.fromPEMFile(certificate)
        guard !chain.isEmpty else { throw HubError("--tls-cert \(certificate) holds no certificate") }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        _ = try NIOSSLContext(configuration: tls)
        return tls
    } catch let error as HubError {
        throw error
    } catch {
        throw HubError(
            "cannot use --tls-cert \(certificate) with --tls-key \(key): \(error) (PEM files; the key must match the certificate)"
        )
    }
}

/// Refuses to serve beyond loopback with nothing authenticating requests, unless told to, loudly.
func checkExposure(_ configuration: HubConfiguration, tokens: TokenRegistry, logger: Logger) throws {
    if tokens.isEnabled {
        logger.notice("bearer tokens required on every route")
        guard !HubConfiguration.isLoopback(configuration.host), configuration.tlsCertificate == nil else { return }
        guard configuration.insecureHTTP else {
            throw HubError(
                "refusing to listen on \(configuration.host) over plain HTTP: every request's token would cross the "
                    + "network in clear text for anyone on the path to read and reuse. Serve HTTPS (--tls-cert and "
                    + "--tls-key), listen on 127.0.0.1 behind a TLS proxy, or pass --insecure-http to do it anyway")
        }
        logger.warning(
            """
            WARNING: --insecure-http: listening on \(configuration.host) without TLS; bearer tokens travel in clear \
            text and anyone on the network path can read and reuse them
            """)
        return
    }
    guard !HubConfiguration.isLoopback(configuration.host) else { return }
    guard configuration.insecureNoAuth else {
        throw HubError(
            "refusing to listen on \(configuration.host) without authentication: anyone who can reach it could run "
                + "any command as this user. Create a token first (xn token create --role admin --data DIR), listen "
                + "on 127.0.0.1 (the default), or pass --insecure-no-auth to do it anyway")
    }
    logger.warning(
        """
        WARNING: --insecure-no-auth: listening on \(configuration.host) with no authentication; anyone who can \
        reach port \(configuration.port) can run any command as this user
        """)
}

/// The router with every route the hub serves over plain HTTP.
func buildRouter(
    scheduler: Scheduler, store: any JobStore & TranscriptStore, configuration: HubConfiguration, audit: AuditLog,
    tokens: TokenRegistry
) -> Router<HubRequestContext> {
    let router = Router(context: HubRequestContext.self)
    router.middlewares.add(RequestMetricsMiddleware(metrics: scheduler.metrics))
    router.middlewares.add(BrowserGuardMiddleware(guardian: BrowserGuard(publicNames: configuration.publicNames)))
    router.middlewares.add(UnknownRouteMiddleware())
    router.middlewares.add(WebPageRedirect())
    router.middlewares.add(AuthMiddleware<HubRequestContext>(tokens: tokens))
    JobsController(scheduler: scheduler, store: store, configuration: configuration, audit: audit).register(on: router)
    TokensController(tokens: tokens, audit: audit).register(on: router)
    TranscriptsController(transcripts: store).register(on: router)
    WebPageController(scheduler: scheduler, tokens: tokens, configuration: configuration).register(on: router)
    // The WebSocket routes reached without an upgrade, or with one that was refused: the
    // refusal that applies, else a pointer to the upgrade.
    router.get(RouterPath(WireProtocol.workerPath)) { _, _ in
        Responses.error(
            .upgradeRequired, "upgrade_required", "workers connect here over WebSocket (\(WireProtocol.subprotocol))")
    }
    router.get("/v1/jobs/:id/attach") { request, context in
        if let refusal = try await attachRefusal(request, context.caller, store: store) { return refusal }
        return Responses.error(.upgradeRequired, "upgrade_required", "attach is a WebSocket: send an upgrade")
    }
    CompatController(scheduler: scheduler, store: store, configuration: configuration, audit: audit).register(
        on: router)
    router.get("/v1/workers") { _, _ in
        Responses.json(.ok, WorkerList(workers: await scheduler.workerList()))
    }
    router.get("/healthz") { _, _ in Responses.json(.ok, Health(status: "ok")) }
    router.get("/readyz") { _, _ in
        if let reason = await scheduler.notReadyReason() {
            return Responses.json(.serviceUnavailable, Health(status: "not_ready", reason: reason))
        }
        do {
            _ = try await store.count(state: .running)
        } catch {
            return Responses.json(.serviceUnavailable, Health(status: "not_ready", reason: "the store cannot be read"))
        }
        return Responses.json(.ok, Health(status: "ready"))
    }
    router.get("/metrics") { _, _ in
        Responses.text(
            .ok, scheduler.metrics.exposition(await scheduler.metricsSnapshot()),
            contentType: "text/plain; version=0.0.4; charset=utf-8")
    }
    router.get("/openapi.yaml") { _, _ in
        Responses.text(.ok, PackageResources.openapi_yaml, contentType: "application/yaml")
    }
    return router
}

/// Opens the SQLite store under the data folder, creating the folder; nil data means in memory.
public func openStore(_ configuration: HubConfiguration) throws -> SQLiteJobStore {
    guard let folder = configuration.dataDirectory else { return try SQLiteJobStore(path: nil) }
    try DataFolder.prepare(folder)
    try DataFolderLock.acquire(folder)
    return try SQLiteJobStore(path: (folder as NSString).appendingPathComponent("xn.sqlite"))
}

/// A hub that cannot start, with a message for the person who started it.
public struct HubError: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
