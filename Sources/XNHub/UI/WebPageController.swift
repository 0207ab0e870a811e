import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import XNProtocol
import XNStore

/// The hub's web page under `/ui/`: its files (embedded in the binary, like openapi.yaml),
/// signing in and out, and the live stream of job changes the job list follows.
struct WebPageController: Sendable {
    let scheduler: Scheduler
    let tokens: TokenRegistry
    let configuration: HubConfiguration

    func register(on router: Router<HubRequestContext>) {
        // The router treats `/ui` and `/ui/` alike; the page's relative addresses need the slash.
        router.get("/ui") { request, _ in
            request.uri.path.hasSuffix("/")
                ? asset("index.html") : Response(status: .movedPermanently, headers: [.location: "/ui/"])
        }
        router.get("/ui/:file") { _, context in
            asset(context.parameters.get("file") ?? "")
        }
        router.get("/ui/xterm/:file") { _, context in
            let name = context.parameters.get("file") ?? ""
            guard let bytes = configuration.xterm?.files[name] else {
                return Responses.error(.notFound, "no_route", "this hub serves no \(name) (see scripts/fetch-xterm.sh)")
            }
            return Self.file(bytes, type: name.hasSuffix(".css") ? "text/css; charset=utf-8" : Self.javascript)
        }
        router.get("/ui/session") { request, context in
            session(context.caller, authorization: BrowserSession.credential(of: request).authorization)
        }
        router.post("/ui/session") { request, _ in try await signIn(request) }
        router.delete("/ui/session") { _, _ in
            var response = Responses.json(.ok, ["signed_in": false])
            response.setCookie(BrowserSession.expiredCookie(secure: configuration.tlsCertificate != nil))
            return response
        }
        router.get("/ui/events") { _, _ in events() }
    }

    /// `index.html` for `/ui/` and for every page address the script routes (`/ui/#/jobs/ID`).
    private func asset(_ name: String) -> Response {
        switch name {
        case "", "index.html": Self.file(PackageResources.index_html, type: "text/html; charset=utf-8")
        case "app.js": Self.file(PackageResources.app_js, type: Self.javascript)
        case "app.css": Self.file(PackageResources.app_css, type: "text/css; charset=utf-8")
        default: Responses.error(.notFound, "no_route", "the web page has no file \(name)")
        }
    }

    static let javascript = "text/javascript; charset=utf-8"

    /// A file of the page, with headers that keep it from being framed, sniffed or given scripts
    /// from anywhere else. xterm.js sets inline styles, hence `style-src 'unsafe-inline'`.
    static func file(_ bytes: [UInt8], type: String) -> Response {
        var headers: HTTPFields = [
            .contentType: type,
            .cacheControl: "no-cache",
            .contentSecurityPolicy:
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                + "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ]
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Who the page is signed in as, what it may do, and its CSRF value.
    private func session(_ caller: Caller, authorization: String?) -> Response {
        Responses.json(
            .ok,
            PageSession(
                tokens: tokens.isEnabled, name: caller.token?.name,
                role: caller.token?.role.rawValue ?? TokenRole.admin.rawValue,
                csrf: authorization.map(BrowserSession.csrf(forAuthorization:)) ?? "",
                xterm: configuration.xterm != nil))
    }

    /// `{"token": "xn_…"}`: checked like a bearer token, then set as the session cookie.
    private func signIn(_ request: Request) async throws -> Response {
        var request = request
        let body = (try? await request.body(upTo: 4096)) ?? ByteBuffer()
        let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
        guard let token = (object?["token"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !token.isEmpty
        else {
            return Responses.error(.badRequest, "invalid_body", "body must be {\"token\": \"xn_…\"}", field: "token")
        }
        guard tokens.isEnabled else {
            return Responses.error(.conflict, "no_tokens", "this hub has no tokens: nothing to sign in to")
        }
        let authorization = "Bearer " + token
        switch tokens.caller(authorization: authorization) {
        case .failure(let refusal):
            return AuthMiddleware<HubRequestContext>.response(refusal, path: "/ui/session")
        case .success(let caller):
            // A token that matched is one the hub made (`xn_` and base64url): a valid cookie value.
            guard let record = caller.token, record.role != .worker else {
                return Responses.error(.forbidden, "forbidden", "a worker token cannot sign in to the web page")
            }
            var response = Responses.json(
                .ok,
                PageSession(
                    tokens: true, name: record.name, role: record.role.rawValue,
                    csrf: BrowserSession.csrf(forAuthorization: authorization), xterm: configuration.xterm != nil))
            response.setCookie(BrowserSession.cookie(token: token, secure: configuration.tlsCertificate != nil))
            return response
        }
    }

    /// Server-sent events: `event: job` with the job's view on every stored state change, and a
    /// comment every 15 s so proxies keep the stream open. Ends when the hub shuts down.
    private func events() -> Response {
        let changes = scheduler.feed.subscribe()
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "retry: 2000\n: xn job events\n\n"))
            // Changes and heartbeats (nil) in one stream, so one loop writes both.
            let (merged, sink) = AsyncStream.makeStream(
                of: JobRecord?.self, bufferingPolicy: .bufferingNewest(JobFeed.backlog))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
            try await withGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await job in changes { sink.yield(job) }
                        sink.finish()
                    }
                    group.addTask {
                        while (try? await Task.sleep(for: .seconds(15))) != nil { sink.yield(nil) }
                    }
                    for await change in merged {
                        guard let job = change else {
                            try await writer.write(ByteBuffer(string: ": beat\n\n"))
                            continue
                        }
                        var event = ByteBuffer(string: "event: job\ndata: ")
                        event.writeBytes(try encoder.encode(JobView(job)))
                        event.writeString("\n\n")
                        try await writer.write(event)
                    }
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                sink.finish()
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-store"],
            body: body)
    }
}

/// The answer of `GET /ui/session` and of signing in.
struct PageSession: Encodable {
    var tokens: Bool
    var name: String?
    var role: String
    var csrf: String
    var xterm: Bool
}

/// A browser opening the hub's address (`GET /` asking for HTML) is sent to the web page;
/// API clients keep http-runner's answer to `GET /` (501).
struct WebPageRedirect: RouterMiddleware {
    typealias Context = HubRequestContext

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if request.method == .get, request.uri.path == "/",
            request.headers[values: .accept].contains(where: { $0.contains("text/html") })
        {
            return Response(status: .seeOther, headers: [.location: "/ui/"])
        }
        return try await next(request, context)
    }
}
