import HTTPTypes
import Hummingbird
import XNProtocol
import XNStore

/// What every route needs from its caller, in one table. A route the router serves without a
/// rule here fails `AuthTests`; a path nobody serves needs any valid token, so an
/// unauthenticated caller learns nothing about it.
enum RoutePolicy {
    static let rules: [String: Permission] = [
        "POST /": .submit,
        "GET /{id}": .read,
        "GET /openapi.yaml": .read,
        "GET /healthz": .anyone,
        "GET /readyz": .anyone,
        "GET /metrics": .read,
        "POST /v1/jobs": .submit,
        "GET /v1/jobs": .read,
        "GET /v1/jobs/{id}": .read,
        "GET /v1/jobs/{id}/stdout": .read,
        "GET /v1/jobs/{id}/stderr": .read,
        // Acting on a job also needs it to be the caller's own, unless the caller is an admin.
        "POST /v1/jobs/{id}/cancel": .submit,
        "POST /v1/jobs/{id}/signal": .submit,
        // Read-only with `mode=read-only`; typing needs `submit` and the job's ownership.
        "GET /v1/jobs/{id}/attach": .read,
        "GET /v1/workers": .read,
        "GET /v1/worker": .worker,
        "GET /v1/tokens": .admin,
        "POST /v1/tokens": .admin,
        "DELETE /v1/tokens/{name}": .admin,
        "GET /v1/jobs/{id}/transcripts": .admin,
        "GET /v1/jobs/{id}/transcripts/{session}": .admin,
        // The web page: its files reveal nothing; signing in and out check the token themselves.
        "GET /ui": .anyone,
        "GET /ui/{file}": .anyone,
        "GET /ui/xterm/{file}": .anyone,
        "GET /ui/session": .authenticated,
        "POST /ui/session": .anyone,
        "DELETE /ui/session": .anyone,
        "GET /ui/events": .read,
    ]

    static let attachRoute = "GET /v1/jobs/{id}/attach"

    /// A rule's route as a request is matched against it.
    struct Route: Sendable {
        /// The rule's key: "GET /v1/jobs/{id}".
        let key: String
        /// The path template, which metrics name the route by: "/v1/jobs/{id}".
        let path: String
        let permission: Permission
        /// Each path segment, nil where the template takes a parameter.
        fileprivate let segments: [Substring?]
    }

    private struct Shape: Hashable {
        let method: String
        let segments: Int
    }

    /// The routes by method and segment count, those with more literal segments first (then by
    /// key), so the first whose literals match is the one meant: `/openapi.yaml` over `/{id}`.
    /// Every request is matched by the metrics and auth middlewares (and the browser guard, when it
    /// would refuse): a lookup by shape spares comparing it with all thirty rules each time.
    private static let routesByShape: [Shape: [Route]] = {
        let routes = rules.map { key, permission in
            let parts = key.split(separator: " ", maxSplits: 1)
            let segments = parts[1].split(separator: "/").map { $0.hasPrefix("{") ? nil : $0 }
            return (
                method: String(parts[0]),
                route: Route(key: key, path: String(parts[1]), permission: permission, segments: segments)
            )
        }
        .sorted {
            let literals = ($0.route.segments.count { $0 != nil }, $1.route.segments.count { $0 != nil })
            return literals.0 != literals.1 ? literals.0 > literals.1 : $0.route.key < $1.route.key
        }
        return Dictionary(grouping: routes) { Shape(method: $0.method, segments: $0.route.segments.count) }
            .mapValues { $0.map(\.route) }
    }()

    /// The rule matching a request, or nil when no rule matches its path.
    static func route(method: HTTPRequest.Method, path: String) -> Route? {
        let segments = path.split(separator: "/")
        guard let candidates = routesByShape[Shape(method: method.rawValue, segments: segments.count)] else {
            return nil
        }
        return candidates.first { route in
            zip(route.segments, segments).allSatisfy { expected, actual in expected.map { $0 == actual } ?? true }
        }
    }

    /// What a request needs: its route's rule, `submit` for an attach that may type, and any
    /// valid token for paths without a route.
    static func permission(for request: Request) -> Permission {
        guard let route = route(method: request.method, path: request.uri.path) else { return .authenticated }
        if route.key == attachRoute, request.uri.queryParameters.get("mode") != "read-only" { return .submit }
        return route.permission
    }
}

/// A context that carries who made the request, set by `AuthMiddleware`.
protocol CallerContext: RequestContext {
    var caller: Caller { get set }
}

/// Checks the bearer token of every request against `RoutePolicy` before any route runs.
struct AuthMiddleware<Context: CallerContext>: RouterMiddleware {
    let tokens: TokenRegistry

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        // Health checks answer whoever asks, whatever header they carry.
        let needed = RoutePolicy.permission(for: request)
        if needed == .anyone { return try await next(request, context) }
        let (authorization, viaCookie) = BrowserSession.credential(of: request)
        switch tokens.caller(authorization: authorization) {
        case .failure(let refusal):
            return Self.response(refusal, path: request.uri.path)
        case .success(let caller) where caller.token == nil:
            // No tokens on this hub: nothing to check.
            return try await next(request, context)
        case .success(let caller):
            if viaCookie, let authorization,
                let reason = BrowserSession.csrfRefusal(request, authorization: authorization)
            {
                return Self.response(.forbidden(reason), path: request.uri.path)
            }
            guard caller.may(needed) else {
                let role = caller.token?.role.rawValue ?? "?"
                let reason =
                    needed == .submit && request.uri.path.hasSuffix("/attach")
                    ? "a \(role) token can only watch a job (xn attach --read-only; mode=read-only)"
                    : "a \(role) token may not do this (it needs \(needed.rawValue))"
                return Self.response(.forbidden(reason), path: request.uri.path)
            }
            context.caller = caller
            return try await next(request, context)
        }
    }

    /// 401 or 403 with a JSON reason: http-runner's shape on its routes, the v1 error elsewhere.
    static func response(_ refusal: AuthRefusal, path: String) -> Response {
        let (status, code, message): (HTTPResponse.Status, String, String) =
            switch refusal {
            case .unauthenticated(let message): (.unauthorized, "unauthorized", message)
            case .forbidden(let message): (.forbidden, "forbidden", message)
            }
        var response =
            path.hasPrefix("/v1") || path.hasPrefix("/ui") || path == "/openapi.yaml" || path == "/metrics"
            ? Responses.error(status, code, message)
            : Responses.json(
                status, ["message": status == .unauthorized ? "Unauthorized" : "Forbidden", "error": message])
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer" }
        return response
    }
}
