import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOWebSocket
import XNProtocol
import XNStore

/// The WebSocket routes: workers dialling in, and clients attaching to jobs. Both pass
/// `AuthMiddleware` first; a refused upgrade falls through to the HTTP router, which answers
/// with the same 401 or 403.
func buildSocketRouter(
    scheduler: Scheduler, store: any JobStore & TranscriptStore, configuration: HubConfiguration, audit: AuditLog,
    tokens: TokenRegistry, logger: Logger
) -> Router<HubWebSocketContext> {
    let workerSocket = WorkerSocket(scheduler: scheduler, configuration: configuration, tokens: tokens, logger: logger)
    let sockets = Router(context: HubWebSocketContext.self)
    // A web page may open a WebSocket to any address: the upgrade is checked like any request.
    sockets.middlewares.add(
        BrowserGuardMiddleware(guardian: BrowserGuard(publicNames: configuration.publicNames)))
    sockets.middlewares.add(AuthMiddleware<HubWebSocketContext>(tokens: tokens))
    sockets.ws(RouterPath(WireProtocol.workerPath)) { request, _ in
        // Accept every upgrade so a worker speaking another version gets a reason, not a bare 4xx.
        let offered = request.headers[.secWebSocketProtocol] ?? ""
        let speaksOurs = offered.split(separator: ",").contains {
            $0.trimmingCharacters(in: .whitespaces) == WireProtocol.subprotocol
        }
        return .upgrade(speaksOurs ? [.secWebSocketProtocol: WireProtocol.subprotocol] : [:])
    } onUpgrade: { inbound, outbound, context in
        await workerSocket.run(
            inbound: inbound, outbound: outbound, offered: context.request.headers[.secWebSocketProtocol],
            grant: WorkerGrant(caller: context.requestContext.caller))
    }
    let attach = AttachSession(scheduler: scheduler, store: store, transcripts: store, logger: logger)
    sockets.ws("v1/jobs/:id/attach") { request, context in
        try await attachRefusal(request, context.caller, store: store) == nil ? .upgrade([:]) : .dontUpgrade
    } onUpgrade: { inbound, outbound, context in
        let query = context.request.uri.queryParameters
        guard let raw = context.requestContext.parameters.get("id"), let id = JobID(raw) else {
            try? await outbound.write(.text(AttachNotice.error("no such job").text))
            return
        }
        let mode = query.get("mode") == "read-only" ? "read-only" : "read-write"
        audit.record(
            "attach", job: raw, from: context.requestContext.peer, by: context.requestContext.caller.name,
            ["mode": mode])
        let offsets: [OutputStreamKind: Int] = [
            .stdout: query.get("stdout").flatMap { Int($0) }.map { max(0, $0) } ?? 0,
            .stderr: query.get("stderr").flatMap { Int($0) }.map { max(0, $0) } ?? 0,
        ]
        let client = AttachSession.Client(token: context.requestContext.caller.name, peer: context.requestContext.peer)
        await tokens.session(of: client.token) {
            try? await outbound.write(.text(AttachNotice.error("token '\(client.token ?? "")' was revoked").text))
            try? await outbound.close(.policyViolation, reason: "token revoked")
        } _: {
            await attach.run(
                id, from: offsets, readOnly: query.get("mode") == "read-only", client: client, inbound: inbound,
                outbound: outbound)
        }
    }
    return sockets
}

/// Why `caller` may not attach to the job `request` names in the mode it asks for (no such job,
/// or not theirs to type into), or nil. Checked before the upgrade, so a refusal is a plain answer.
func attachRefusal(_ request: Request, _ caller: Caller, store: any JobStore) async throws -> Response? {
    let text = request.uri.path.split(separator: "/").dropLast().last.map(String.init) ?? ""
    guard let id = JobID(text) else { return JobsController.notAJobID(text) }
    guard let job = try await store.job(id) else { return JobsController.notFound(id) }
    guard request.uri.queryParameters.get("mode") != "read-only", caller.token != nil else { return nil }
    return caller.mayControl(job) ? nil : JobsController.notYours(id)
}
