import Foundation
import HTTPTypes
public import Hummingbird
import HummingbirdWebSocket
public import Logging
import NIOCore
import Synchronization
public import XNExec
import XNProtocol
import XNStore

/// Builds a hub: its store, its scheduler on the given executor, and the HTTP application.
///
/// `onListening` receives the bound port (useful with port 0).
public func buildApplication(
    configuration: HubConfiguration, executor: any JobExecutor, logger: Logger,
    onListening: @escaping @Sendable (Int) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
    let store = try openStore(configuration)
    let scheduler = Scheduler(store: store, executor: executor, configuration: configuration, logger: logger)
    let audit = AuditLog(logger)
    let router = buildRouter(scheduler: scheduler, store: store, configuration: configuration, audit: audit)
    let session = WorkerSession(scheduler: scheduler, store: store, configuration: configuration, logger: logger)
    let sockets = Router(context: HubWebSocketContext.self)
    sockets.ws(RouterPath(WireProtocol.workerPath)) { request, _ in
        // Accept every upgrade so a worker speaking another version gets a reason, not a bare 4xx.
        let offered = request.headers[.secWebSocketProtocol] ?? ""
        let speaksOurs = offered.split(separator: ",").contains {
            $0.trimmingCharacters(in: .whitespaces) == WireProtocol.subprotocol
        }
        return .upgrade(speaksOurs ? [.secWebSocketProtocol: WireProtocol.subprotocol] : [:])
    } onUpgrade: { inbound, outbound, context in
        await session.run(
            inbound: inbound, outbound: outbound, offered: context.request.headers[.secWebSocketProtocol])
    }
    let attach = AttachSession(scheduler: scheduler, store: store, logger: logger)
    sockets.ws("v1/jobs/:id/attach") { _, _ in
        .upgrade([:])
    } onUpgrade: { inbound, outbound, context in
        let query = context.request.uri.queryParameters
        guard let raw = context.requestContext.parameters.get("id"), let id = JobID(raw) else {
            try? await outbound.write(.text(AttachSession.message(["type": "error", "message": "no such job"])))
            return
        }
        let mode = query.get("mode") == "read-only" ? "read-only" : "read-write"
        audit.record("attach", job: raw, from: context.requestContext.peer, ["mode": mode])
        let offsets: [OutputStreamName: Int] = [
            .stdout: query.get("stdout").flatMap { Int($0) }.map { max(0, $0) } ?? 0,
            .stderr: query.get("stderr").flatMap { Int($0) }.map { max(0, $0) } ?? 0,
        ]
        await attach.run(
            id, from: offsets, readOnly: query.get("mode") == "read-only", inbound: inbound, outbound: outbound)
    }
    var app = Application(
        router: router,
        server: .http1WebSocketUpgrade(
            webSocketRouter: sockets,
            configuration: .init(
                ws: .init(
                    maxFrameSize: WireProtocol.maxFrameBytes,
                    extensions: [.nonNegotiatedExtension { WordwiseUnmask() }]))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        onServerRunning: { channel in
            await onListening(channel.localAddress?.port ?? configuration.port)
        },
        logger: logger)
    app.addServices(scheduler)
    app.beforeServerStarts { try await scheduler.recover() }
    return app
}

/// Runs a hub until SIGINT or SIGTERM, then shuts it down gracefully.
public func runHub(
    configuration: HubConfiguration, executor: any JobExecutor, logger: Logger,
    onListening: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws {
    let app = try buildApplication(
        configuration: configuration, executor: executor, logger: logger, onListening: onListening)
    try await app.runService()
}

/// The router with every route the hub serves.
func buildRouter(
    scheduler: Scheduler, store: any JobStore, configuration: HubConfiguration, audit: AuditLog
) -> Router<HubRequestContext> {
    let router = Router(context: HubRequestContext.self)
    router.middlewares.add(UnknownRouteMiddleware())
    JobsController(scheduler: scheduler, store: store, configuration: configuration, audit: audit).register(on: router)
    CompatController(scheduler: scheduler, store: store, configuration: configuration, audit: audit).register(
        on: router)
    router.get("/v1/workers") { _, _ in
        let workers = await scheduler.workerList().map { worker in
            WorkerView(
                name: worker.name, labels: worker.labels, slots: worker.slots, running: worker.attempts.count,
                connectedAt: worker.connectedAt, lastHeartbeat: worker.lastSeen, version: worker.version,
                draining: worker.draining)
        }
        return Responses.json(.ok, WorkerList(workers: workers))
    }
    router.get("/openapi.yaml") { _, _ in
        Responses.text(.ok, PackageResources.openapi_yaml, contentType: "application/yaml")
    }
    return router
}

/// Opens the SQLite store under the data folder, creating the folder; nil data means in memory.
func openStore(_ configuration: HubConfiguration) throws -> any JobStore {
    guard let folder = configuration.dataDirectory else { return try SQLiteJobStore(path: nil) }
    do {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    } catch {
        throw HubError("cannot create data folder \(folder): \(error.localizedDescription)")
    }
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
