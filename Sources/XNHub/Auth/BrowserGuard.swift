import Foundation
import HTTPTypes
import Hummingbird
import XNProtocol

/// Keeps web pages from driving the hub through a browser on its machine or network.
///
/// A page can POST a `text/plain` body to `http://127.0.0.1:9000/v1/jobs`, open a WebSocket to
/// it, or rename itself with DNS rebinding so its requests look same-origin. Browsers always say
/// where a request comes from (`Origin`, `Sec-Fetch-Site`) and which name they resolved (`Host`);
/// curl and xn's own clients send no `Origin`, so they pass unchanged.
struct BrowserGuard: Sendable {
    /// Names the hub answers to besides loopback names and IP addresses (`--public-name`).
    let publicNames: Set<String>

    init(publicNames: [String]) {
        self.publicNames = Set(publicNames.map { $0.lowercased() })
    }

    /// Why `request` is refused, or nil when it may go on.
    func refusal(_ request: Request) -> String? {
        let host = request.head.authority
        if let host, !knows(host) {
            return "this hub does not answer to the name '\(Self.name(ofAuthority: host))' "
                + "(a DNS rebinding page?); add it with xn hub --public-name"
        }
        // A page's origin is http(s) (or `null`); WebSocket client libraries, ours among them,
        // name the ws:// URL they dialled, which no browser sends.
        for origin in request.headers[values: .origin] where !Self.isClientLibraryOrigin(origin) {
            // Same-origin only: the page must have been served by this hub, under a name it knows.
            guard let host, let from = Self.authority(ofOrigin: origin), Self.same(from, host.lowercased()) else {
                return "requests from web pages of another origin (\(origin)) are refused"
            }
        }
        if let site = request.headers[Self.secFetchSite], site != "same-origin", site != "none" {
            return "requests a browser marks \(site) are refused"
        }
        return nil
    }

    /// Loopback names, IP literals (a rebinding page needs a name) and `--public-name` names.
    func knows(_ authority: String) -> Bool {
        let name = Self.name(ofAuthority: authority)
        if name.isEmpty { return false }
        if name == "localhost" || name.hasSuffix(".localhost") { return true }
        if HubConfiguration.ipAddress(name) != nil { return true }
        return publicNames.contains(name)
    }

    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!

    /// "Host:port" or "[v6]:port" without the port, lowercased, brackets removed.
    static func name(ofAuthority authority: String) -> String {
        var text = authority.lowercased()
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return text }
            return String(text[text.index(after: text.startIndex)..<close])
        }
        if let colon = text.lastIndex(of: ":") { text = String(text[..<colon]) }
        return text
    }

    static func isClientLibraryOrigin(_ origin: String) -> Bool {
        let lowered = origin.lowercased()
        return lowered.hasPrefix("ws://") || lowered.hasPrefix("wss://")
    }

    /// Whether an origin's authority and a `Host` name the same place; a `Host` may carry the
    /// default port an `Origin` leaves out.
    static func same(_ origin: String, _ host: String) -> Bool {
        origin == host || host == origin + ":80" || host == origin + ":443"
    }

    /// The `host[:port]` of an `Origin` (`scheme://host[:port]`), lowercased; nil for `null` or junk.
    static func authority(ofOrigin origin: String) -> String? {
        guard let separator = origin.range(of: "://") else { return nil }
        let rest = origin[separator.upperBound...].lowercased()
        guard !rest.isEmpty, !rest.contains("/") else { return nil }
        return rest
    }
}

/// Refuses what `BrowserGuard` refuses, before any route or token check, with the JSON reason the
/// route's family uses. Reading a route open to anyone (the health checks, the web page's files)
/// is left alone: it reveals nothing, and load balancers send whatever `Host` they were
/// configured with. Signing in and out are open to anyone too, but change something: guarded.
struct BrowserGuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let guardian: BrowserGuard

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if let reason = guardian.refusal(request),
            !(request.method == .get && RoutePolicy.permission(for: request) == .anyone)
        {
            return AuthMiddleware<HubRequestContext>.response(.forbidden(reason), path: request.uri.path)
        }
        return try await next(request, context)
    }
}
