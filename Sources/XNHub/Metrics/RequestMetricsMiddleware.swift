import HTTPTypes
import Hummingbird

/// Counts every HTTP answer by method, route template and status, and times it. The route is
/// `RoutePolicy`'s template ("GET /v1/jobs/{id}"), never the raw path, so job ids do not become
/// series; a path no route serves counts as "other".
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: HubMetrics

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let started = ContinuousClock.now
        let route = RoutePolicy.route(method: request.method, path: request.uri.path)?.path
        func record(_ status: Int) {
            metrics.request(
                method: request.method, route: route ?? "other", status: status,
                duration: ContinuousClock.now - started)
        }
        do {
            let response = try await next(request, context)
            record(response.status.code)
            return response
        } catch {
            record((error as? any HTTPResponseError)?.status.code ?? 500)
            throw error
        }
    }
}
