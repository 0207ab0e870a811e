import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import Synchronization
import Testing
import XNProtocol

@testable import XNHub

/// What a web page open in a browser on the hub's machine could send: requests from its own
/// origin, names it rebound to 127.0.0.1, WebSockets. curl and xn send none of these headers.
@Suite(.timeLimit(.minutes(2)))
struct BrowserGuardTests {
    static let evil = [("Origin", "http://evil.example")]

    @Test func aPageOfAnotherOriginCannotSubmitReadOrMakeAToken() async throws {
        try await withHub { hub in
            let posted = try await request(
                .POST, hub.url + "/v1/jobs", body: #"{"command":"touch","args":["/tmp/pwned"]}"#,
                headers: Self.evil + [("Content-Type", "text/plain")])
            #expect(posted.status == 403)
            let error = try #require(try posted.object()["error"] as? [String: Any])
            #expect(error["code"] as? String == "forbidden")
            #expect((error["message"] as? String)?.contains("another origin (http://evil.example)") == true)
            // http-runner's route: its own 403 shape.
            let compat = try await request(
                .POST, hub.url + "/", body: #"{"command":"true"}"#,
                headers: Self.evil + [("Content-Type", "text/plain")])
            #expect(compat.status == 403)
            #expect(try compat.object()["message"] as? String == "Forbidden")
            // A browser that marks a request cross-site or same-site (another port) without Origin.
            for site in ["cross-site", "same-site"] {
                let read = try await request(.GET, hub.url + "/v1/jobs", headers: [("Sec-Fetch-Site", site)])
                #expect(read.status == 403, "Sec-Fetch-Site: \(site)")
            }
            let token = try await request(
                .POST, hub.url + "/v1/tokens", body: #"{"name":"mine","role":"admin"}"#, headers: Self.evil)
            #expect(token.status == 403)
            // Nothing was stored, and the hub still has no token.
            #expect((try await hub.get("/v1/jobs").object()["jobs"] as? [Any])?.count == 0)
            #expect(try await hub.get("/v1/tokens").status == 200)
        }
    }

    @Test func theHubsOwnPagesAndPlainClientsStillWork() async throws {
        try await withHub { hub in
            let own = [("Origin", "http://127.0.0.1:\(hub.port)"), ("Sec-Fetch-Site", "same-origin")]
            let submitted = try await request(
                .POST, hub.url + "/v1/jobs", body: #"{"command":"true"}"#, headers: own)
            #expect(submitted.status == 201)
            let typed = try await request(.GET, hub.url + "/v1/jobs", headers: [("Sec-Fetch-Site", "none")])
            #expect(typed.status == 200)
            // http-runner's client: curl, no Origin, no Sec-Fetch-Site.
            #expect(try await hub.post("/", #"{"command":"true"}"#).status == 202)
            // Even the hub's own page may not make the first token: that is done from a shell.
            let first = try await request(
                .POST, hub.url + "/v1/tokens", body: #"{"name":"ui","role":"admin"}"#, headers: own)
            #expect(first.status == 403)
            #expect(first.text.contains("xn token create"))
            #expect(try await hub.post("/v1/tokens", #"{"name":"shell","role":"admin"}"#).status == 201)
        }
    }

    @Test func aRebindingNameIsRefusedAndKnownNamesAreNot() async throws {
        try await withHub({ $0.publicNames = ["hub.example"] }) { hub in
            func status(host: String, origin: String? = nil, path: String = "/v1/jobs") async throws -> Int {
                var headers = [("Host", host)]
                if let origin { headers.append(("Origin", origin)) }
                return try await request(.GET, hub.url + path, headers: headers).status
            }
            let port = hub.port
            let rebound = try await request(.GET, hub.url + "/v1/jobs", headers: [("Host", "attacker.example:\(port)")])
            #expect(rebound.status == 403)
            #expect(rebound.text.contains("does not answer to the name 'attacker.example'"))
            #expect(try await status(host: "127.evil.example:\(port)") == 403)
            // The name's own page is as foreign as any other.
            #expect(
                try await status(host: "attacker.example:\(port)", origin: "http://attacker.example:\(port)") == 403)
            for known in [
                "127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)", "hub.example:\(port)", "HUB.example",
            ] {
                #expect(try await status(host: known) == 200, "Host: \(known)")
            }
            #expect(try await status(host: "hub.example:\(port)", origin: "http://hub.example:\(port)") == 200)
            // Load balancers' health checks pass whatever name they use.
            #expect(try await status(host: "lb-backend.internal", path: "/healthz") == 200)
        }
    }

    @Test func aWebSocketFromAnotherOriginIsRefused() async throws {
        try await withHub { hub in
            let job = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
            let logger = Logger(label: "test.page") { _ in SwiftLogNoOpLogHandler() }
            for path in ["/v1/worker", "/v1/jobs/\(job)/attach?mode=read-only"] {
                var fields = HTTPFields()
                fields[.origin] = "http://evil.example"
                fields[.secWebSocketProtocol] = WireProtocol.subprotocol
                let headers = fields
                let opened = SeenFlag()
                await #expect(throws: (any Error).self, "upgrade of \(path)") {
                    _ = try await withDeadline(.seconds(20)) {
                        try await WebSocketClient.connect(
                            url: "ws://127.0.0.1:\(hub.port)\(path)",
                            configuration: .init(additionalHeaders: headers), logger: logger
                        ) { _, _, _ in opened.set() }
                    }
                }
                #expect(!opened.value, "a page got a WebSocket on \(path)")
                let asked = try await request(.GET, hub.url + path, headers: Self.evil)
                #expect(asked.status == 403, "\(path)")
            }
            #expect((try await hub.get("/v1/workers").object()["workers"] as? [Any])?.count == 0)
            #expect(try await hub.post("/v1/jobs/\(job)/cancel", "").status == 200)
        }
    }

    @Test func loopbackIsAnAddressNotAPrefix() {
        #expect(HubConfiguration.isLoopback("127.0.0.1"))
        #expect(HubConfiguration.isLoopback("127.1.2.3"))
        #expect(HubConfiguration.isLoopback("::1"))
        #expect(HubConfiguration.isLoopback("[::1]"))
        #expect(HubConfiguration.isLoopback("localhost"))
        #expect(!HubConfiguration.isLoopback("127.evil.example"))
        #expect(!HubConfiguration.isLoopback("10.0.0.1"))
        #expect(!HubConfiguration.isLoopback("0.0.0.0"))
    }
}

/// Set once from a WebSocket handler that should never run.
final class SeenFlag: Sendable {
    private let seen = Mutex(false)
    func set() { seen.withLock { $0 = true } }
    var value: Bool { seen.withLock { $0 } }
}
