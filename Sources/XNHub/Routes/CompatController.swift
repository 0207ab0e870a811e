import HTTPTypes
import Hummingbird
import XNProtocol
import XNStore

/// http-runner's API, same shapes and status codes: `POST /` and `GET /<id>`.
struct CompatController: Sendable {
    let scheduler: Scheduler
    let store: any JobStore
    let configuration: HubConfiguration
    let audit: AuditLog

    func register(on router: Router<HubRequestContext>) {
        router.post("/") { request, context in try await submit(request, context) }
        router.get("/:id") { _, context in try await show(context.parameters.get("id") ?? "") }
    }

    static func badRequest(_ reason: String) -> Response {
        Responses.json(.badRequest, ["message": "Bad Request", "error": reason])
    }

    static let notImplemented = Responses.json(.notImplemented, ["message": "Not Implemented"])

    private func submit(_ request: Request, _ context: HubRequestContext) async throws -> Response {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.body(upTo: configuration.maxBodyBytes)
        } catch is BodyTooLarge {
            return Responses.json(.contentTooLarge, ["message": "Payload Too Large"])
        }
        var spec: JobSpec
        do {
            spec = try JobSpec.parse(json: body.readableBytesView, strict: false)
        } catch {
            return Self.badRequest(error.message)
        }
        switch configuration.admit(spec, by: context.caller) {
        case .success(let admitted): spec = admitted
        case .failure(let refusal): return Self.badRequest(refusal.message)
        }
        let job: JobRecord
        do {
            job = try await scheduler.submit(
                spec, owner: context.caller.name, ownerCap: configuration.queueCap(of: context.caller))
        } catch is QueueFull {
            return Responses.json(.tooManyRequests, ["message": "Too Many Requests"])
        }
        audit.submitted(job, from: context.peer)
        return Responses.compat(.accepted, CompatJob(job, stdout: [], stderr: []))
    }

    private func show(_ text: String) async throws -> Response {
        guard let id = JobID(text) else { return Self.notImplemented }
        guard let job = try await store.job(id) else {
            return Responses.json(.notFound, ["message": "Not Found"])
        }
        let (stdout, stderr) = try await store.fullOutput(of: job, limit: CompatJob.inlineOutputBytes)
        return Responses.compat(.ok, CompatJob(job, stdout: stdout, stderr: stderr))
    }
}

/// Routes nobody owns: 501 in http-runner's shape, or a v1 error under `/v1`.
struct UnknownRouteMiddleware: RouterMiddleware {
    typealias Context = HubRequestContext

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            if request.uri.path == "/v1" || request.uri.path.hasPrefix("/v1/") {
                return Responses.error(.notFound, "no_route", "no route \(request.method) \(request.uri.path)")
            }
            return CompatController.notImplemented
        }
    }
}
