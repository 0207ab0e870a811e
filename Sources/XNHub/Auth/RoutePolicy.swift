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

    /// Each rule's method and path segments, split once.
    private static let templates: [(key: String, method: String, segments: [Substring])] = rules.keys.sorted().map {
        let parts = $0.split(separator: " ", maxSplits: 1)
        return ($0, String(parts[0]), parts[1].split(separator: "/", omittingEmptySubsequences: true))
    }

    /// The rule's key for a request ("GET /v1/jobs/{id}"), or nil when no rule matches its path.
    /// Literal segments win over parameters (`/openapi.yaml` over `/{id}`).
    static func route(method: HTTPRequest.Method, path: String) -> String? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        var best: (key: String, literals: Int)?
        for template in templates where template.method == method.rawValue && template.segments.count == segments.count
        {
            var literals = 0
            var matches = true
            for (expected, actual) in zip(template.segments, segments) where !expected.hasPrefix("{") {
                guard expected == actual else {
                    matches = false
                    break
                }
                literals += 1
            }
            if matches, literals > (best?.literals ?? -1) { best = (template.key, literals) }
        }
        return best?.key
    }

    /// What a request needs: its route's rule, `submit` for an attach that may type, and any
    /// valid token for paths without a route.
    static func permission(for request: Request) -> Permission {
        guard let route = route(method: request.method, path: request.uri.path) else { return .authenticated }
        if route == attachRoute, request.uri.queryParameters.get("mode") != "read-only" { return .submit }
        return rules[route] ?? .authenticated
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
        if RoutePolicy.permission(for: request) == .anyone { return try await next(request, context) }
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
            let needed = RoutePolicy.permission(for: request)
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
