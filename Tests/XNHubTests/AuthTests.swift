import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOHTTP1
import Testing
import XNClient
import XNExec
import XNStore

@testable import XNHub

/// Bearer tokens and roles: every route, every kind of caller.
@Suite(.timeLimit(.minutes(2)))
struct AuthTests {
    /// Who calls, in the table below.
    enum Who: String, CaseIterable {
        case nobody, garbage, revoked, read, owner, otherSubmitter, worker, admin
    }

    /// One request per route, and who may make it. A route added to the hub without a row here
    /// (and without a rule in `RoutePolicy`) fails `everyRouteHasARuleAndARowHere`.
    struct Row: Sendable {
        let route: String
        let method: HTTPMethod
        let path: String
        var body: String?
        let allowed: Set<Who>
        /// An endless answer (the event stream): only its head is read.
        var streams = false
    }

    static func rows(job: String) -> [Row] {
        let readers: Set<Who> = [.read, .owner, .otherSubmitter, .admin]
        let submitters: Set<Who> = [.owner, .otherSubmitter, .admin]
        let controllers: Set<Who> = [.owner, .admin]
        return [
            Row(route: "POST /", method: .POST, path: "/", body: #"{"command":"true"}"#, allowed: submitters),
            Row(route: "GET /{id}", method: .GET, path: "/\(job)", allowed: readers),
            Row(route: "GET /openapi.yaml", method: .GET, path: "/openapi.yaml", allowed: readers),
            // Health checks: anyone, even with a bad or revoked token.
            Row(route: "GET /healthz", method: .GET, path: "/healthz", allowed: Set(Who.allCases)),
            Row(route: "GET /readyz", method: .GET, path: "/readyz", allowed: Set(Who.allCases)),
            Row(route: "GET /metrics", method: .GET, path: "/metrics", allowed: readers),
            Row(
                route: "POST /v1/jobs", method: .POST, path: "/v1/jobs", body: #"{"command":"true"}"#,
                allowed: submitters),
            Row(route: "GET /v1/jobs", method: .GET, path: "/v1/jobs", allowed: readers),
            Row(route: "GET /v1/jobs/{id}", method: .GET, path: "/v1/jobs/\(job)", allowed: readers),
            Row(route: "GET /v1/jobs/{id}/stdout", method: .GET, path: "/v1/jobs/\(job)/stdout", allowed: readers),
            Row(route: "GET /v1/jobs/{id}/stderr", method: .GET, path: "/v1/jobs/\(job)/stderr", allowed: readers),
            Row(
                route: "POST /v1/jobs/{id}/signal", method: .POST, path: "/v1/jobs/\(job)/signal",
                body: #"{"signal":"CONT"}"#, allowed: controllers),
            // Typing into a job: its owner and admins; watching: every reader.
            Row(route: "GET /v1/jobs/{id}/attach", method: .GET, path: "/v1/jobs/\(job)/attach", allowed: controllers),
            Row(
                route: "GET /v1/jobs/{id}/attach", method: .GET, path: "/v1/jobs/\(job)/attach?mode=read-only",
                allowed: readers),
            Row(route: "GET /v1/workers", method: .GET, path: "/v1/workers", allowed: readers),
            Row(route: "GET /v1/worker", method: .GET, path: "/v1/worker", allowed: [.worker, .admin]),
            Row(route: "GET /v1/tokens", method: .GET, path: "/v1/tokens", allowed: [.admin]),
            Row(
                route: "POST /v1/tokens", method: .POST, path: "/v1/tokens",
                body: #"{"name":"NAME","role":"read"}"#, allowed: [.admin]),
            Row(
                route: "GET /v1/jobs/{id}/transcripts", method: .GET, path: "/v1/jobs/\(job)/transcripts",
                allowed: [.admin]),
            Row(
                route: "GET /v1/jobs/{id}/transcripts/{session}", method: .GET, path: "/v1/jobs/\(job)/transcripts/1",
                allowed: [.admin]),
            Row(
                route: "DELETE /v1/tokens/{name}", method: .DELETE, path: "/v1/tokens/nobody-has-it", allowed: [.admin]),
            // The web page: its files, signing in and out are anyone's (signing in checks the token
            // in its body); who is signed in needs a token other than a worker's; the job events need
            // a reader.
            Row(route: "GET /ui", method: .GET, path: "/ui/", allowed: Set(Who.allCases)),
            Row(route: "GET /ui/{file}", method: .GET, path: "/ui/app.js", allowed: Set(Who.allCases)),
            Row(route: "GET /ui/xterm/{file}", method: .GET, path: "/ui/xterm/xterm.js", allowed: Set(Who.allCases)),
            Row(route: "POST /ui/session", method: .POST, path: "/ui/session", body: "{}", allowed: Set(Who.allCases)),
            Row(route: "DELETE /ui/session", method: .DELETE, path: "/ui/session", allowed: Set(Who.allCases)),
            Row(route: "GET /ui/session", method: .GET, path: "/ui/session", allowed: readers),
            Row(route: "GET /ui/events", method: .GET, path: "/ui/events", allowed: readers, streams: true),
            // Last: the owner's cancel ends the job the rows above act on.
            Row(
                route: "POST /v1/jobs/{id}/cancel", method: .POST, path: "/v1/jobs/\(job)/cancel", allowed: controllers),
        ]
    }

    @Test func everyRouteHasARuleAndARowHere() throws {
        let configuration = HubConfiguration()
        let store = try SQLiteJobStore(path: nil)
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let scheduler = Scheduler(store: store, configuration: configuration, localWorker: nil, logger: logger)
        let tokens = TokenRegistry(store: store)
        let audit = AuditLog(logger)
        let http = buildRouter(
            scheduler: scheduler, store: store, configuration: configuration, audit: audit, tokens: tokens)
        let sockets = buildSocketRouter(
            scheduler: scheduler, store: store, configuration: configuration, audit: audit, tokens: tokens,
            logger: logger)
        func key(_ method: String, _ path: String) -> String {
            let parts = path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
            return "\(method) /\(parts.joined(separator: "/"))"
        }
        let served = Set(
            http.routes.map { key($0.method.rawValue, $0.path.description) }
                + sockets.routes.map { key($0.method.rawValue, $0.path.description) })
        #expect(served.subtracting(RoutePolicy.rules.keys).isEmpty, "routes without an auth rule")
        #expect(Set(RoutePolicy.rules.keys).subtracting(served).isEmpty, "auth rules for routes nobody serves")
        #expect(
            Set(Self.rows(job: "x").map(\.route)) == Set(RoutePolicy.rules.keys), "rules without a row in this test")
    }

    @Test func eachRouteAnswersEachCallerAsItsRuleSays() async throws {
        try await withHub { hub in
            let callers = try await Self.makeCallers(hub)
            let job = try await hub.submit(#"{"command":"sleep","args":["30"]}"#, token: callers[.owner])
            for row in Self.rows(job: job) {
                for who in Who.allCases {
                    let body = row.body?.replacingOccurrences(of: "NAME", with: "made-by-\(who.rawValue)")
                    let result = try await request(
                        row.method, hub.url + row.path, body: body,
                        headers: callers[who].map { [("Authorization", "Bearer \($0)")] } ?? [], headOnly: row.streams)
                    let what = "\(row.method.rawValue) \(row.path) as \(who.rawValue): \(result.status) \(result.text)"
                    if row.allowed == Set(Who.allCases), !row.route.hasPrefix("GET /healthz"),
                        !row.route.hasPrefix("GET /readyz")
                    {
                        #expect(result.status != 401 && result.status != 403 && result.status < 500, "\(what)")
                    } else if row.allowed == Set(Who.allCases) {
                        #expect(result.status == 200, "\(what)")
                        let status = try result.object()["status"] as? String
                        #expect(status == "ok" || status == "ready", "\(what)")
                    } else if [.nobody, .garbage, .revoked].contains(who) {
                        #expect(result.status == 401, "\(what)")
                        #expect(result.headers["WWW-Authenticate"].first == "Bearer", "\(what)")
                    } else if row.allowed.contains(who) {
                        #expect(result.status != 401 && result.status != 403 && result.status < 500, "\(what)")
                    } else {
                        #expect(result.status == 403, "\(what)")
                    }
                    // Every refusal is JSON with a reason.
                    if result.status == 401 || result.status == 403 {
                        let object = try result.object()
                        let reason =
                            (object["error"] as? [String: Any])?["message"] as? String ?? object["error"] as? String
                        #expect(reason?.isEmpty == false, "\(what)")
                    }
                }
            }
            // An unknown path tells an unauthenticated caller nothing either.
            #expect(try await request(.GET, hub.url + "/no/such/route").status == 401)
            #expect(
                try await request(
                    .GET, hub.url + "/no/such/route", headers: [("Authorization", "Bearer \(callers[.read]!)")]
                )
                .status == 501)
        }
    }

    @Test func aReadTokenWatchesAnAttachedJobButCannotTypeIntoIt() async throws {
        try await withHub { hub in
            let callers = try await Self.makeCallers(hub)
            let id = try await hub.submit(#"{"command":"cat","interactive":true}"#, token: callers[.owner])
            // The read token's WebSocket upgrade to type is refused; the HTTP answer says why.
            await #expect(throws: WebSocketClientError.webSocketUpgradeFailed) {
                _ = try await attach(hub, id, token: callers[.read]) { _, _ in }
            }
            let refusal = try await request(
                .GET, hub.url + "/v1/jobs/\(id)/attach", headers: [("Authorization", "Bearer \(callers[.read]!)")])
            #expect(refusal.status == 403)
            #expect(refusal.text.contains("can only watch"))
            async let watching = attach(hub, id, query: "mode=read-only", token: callers[.read]) { outbound, seen in
                try await seen.waitFor("typed by the owner")
                try await outbound.write(.binary(.init(string: "typed by the reader\n")))
                try await seen.waitForError("read-only")
            }
            _ = try await attach(hub, id, token: callers[.owner]) { outbound, seen in
                try await outbound.write(.binary(.init(string: "typed by the owner\n")))
                try await seen.waitFor("typed by the owner")
                try await outbound.write(.text(#"{"type":"close_stdin"}"#))
                try await seen.waitForExit()
            }
            let watched = try await watching
            #expect(!watched.text.contains("typed by the reader"))
            // The owner's own client (XNClient) gets the hub's reason, not endless retries.
            let client = AttachClient(hub: hub.url, job: id, token: callers[.read])
            await #expect {
                _ = try await client.run { _ in }
            } throws: { error in
                (error as? ClientError)?.status == 403
            }
        }
    }

    @Test func aTokensLabelsWhitelistAndQueueCapHoldForItsJobs() async throws {
        try await withHub({ $0.slots = 1 }) { hub in
            let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
            let pooled = try await hub.createToken(
                #"{"name":"pooled","role":"submit","labels":{"pool":"a"},"allow":["true","/bin/echo"],"max_queued":2}"#,
                as: admin)
            let first = try await hub.submit(#"{"command":"true"}"#, token: pooled)
            let view = try await request(
                .GET, hub.url + "/v1/jobs/\(first)", headers: [("Authorization", "Bearer \(admin)")]
            )
            .object()
            #expect(view["labels"] as? [String: String] == ["pool": "a"])
            #expect(view["owner"] as? String == "pooled")
            // The hub's free slot does not take it: its jobs are for workers with pool=a only.
            #expect(view["state"] as? String == "queued")
            #expect(view["waiting"] as? String == "waiting for a worker with pool=a")
            let elsewhere = try await request(
                .POST, hub.url + "/v1/jobs", body: #"{"command":"true","labels":{"pool":"b"}}"#,
                headers: [("Authorization", "Bearer \(pooled)")])
            #expect(elsewhere.status == 403)
            #expect(elsewhere.text.contains("labels_not_allowed"))
            let other = try await request(
                .POST, hub.url + "/v1/jobs", body: #"{"command":"sh"}"#,
                headers: [("Authorization", "Bearer \(pooled)")])
            #expect(other.status == 403)
            #expect(other.text.contains("this token's whitelist"))
            let second = try await hub.submit(#"{"command":"echo","args":["two"]}"#, token: pooled)
            let third = try await request(
                .POST, hub.url + "/v1/jobs", body: #"{"command":"true"}"#,
                headers: [("Authorization", "Bearer \(pooled)")])
            #expect(third.status == 429)
            #expect(third.text.contains("token 'pooled' already has 2 job(s) queued"))
            // The cap is the token's own: others still queue.
            _ = try await hub.submit(#"{"command":"true"}"#, token: admin)
            // A worker with the pool's label (and a worker token) runs them.
            let workerToken = try await hub.createToken(
                #"{"name":"pool-a","role":"worker","labels":{"pool":"a"}}"#, as: admin)
            let worker = try TestWorker.start(hub: hub.url, name: "pool-a", labels: ["pool": "a"]) {
                $0.token = workerToken
            }
            defer { Task { await worker.stop() } }
            for id in [first, second] {
                try await eventually("job \(id) ends") { () -> Bool? in
                    let job = try await request(
                        .GET, hub.url + "/v1/jobs/\(id)?wait=2", headers: [("Authorization", "Bearer \(admin)")]
                    ).object()
                    return job["state"] as? String == "succeeded" ? true : nil
                }
            }
        }
    }

    /// Creates one token per kind of caller; the first (admin) on the open hub turns auth on.
    static func makeCallers(_ hub: TestHub) async throws -> [Who: String] {
        var callers: [Who: String] = [.garbage: "xn_not-a-token"]
        callers[.admin] = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
        callers[.read] = try await hub.createToken(#"{"name":"reader","role":"read"}"#, as: callers[.admin])
        callers[.owner] = try await hub.createToken(#"{"name":"alice","role":"submit"}"#, as: callers[.admin])
        callers[.otherSubmitter] = try await hub.createToken(
            #"{"name":"mallory","role":"submit"}"#, as: callers[.admin])
        callers[.worker] = try await hub.createToken(#"{"name":"w","role":"worker"}"#, as: callers[.admin])
        callers[.revoked] = try await hub.createToken(#"{"name":"gone","role":"admin"}"#, as: callers[.admin])
        let revoked = try await request(
            .DELETE, hub.url + "/v1/tokens/gone", headers: [("Authorization", "Bearer \(callers[.admin]!)")])
        #expect(revoked.status == 200)
        return callers
    }
}

extension ReachableHub {
    /// Creates a token through the API and returns its secret.
    func createToken(_ json: String, as token: String?) async throws -> String {
        let result = try await request(
            .POST, url + "/v1/tokens", body: json, headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [])
        guard result.status == 201, let secret = try result.object()["secret"] as? String else {
            throw TestFailure("token not created: \(result.status) \(result.text)")
        }
        return secret
    }

    /// Submits with a token and returns the job id.
    func submit(_ json: String, token: String?) async throws -> String {
        let result = try await request(
            .POST, url + "/v1/jobs", body: json, headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [])
        guard result.status == 201, let id = try result.object()["id"] as? String else {
            throw TestFailure("job not submitted: \(result.status) \(result.text)")
        }
        return id
    }
}

/// `GET /readyz` says ready only once what a previous hub left is resolved.
@Suite struct ReadinessTests {
    @Test func aHubIsNotReadyUntilItHasRecovered() async throws {
        let store = try SQLiteJobStore(path: nil)
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let scheduler = Scheduler(store: store, configuration: HubConfiguration(), localWorker: nil, logger: logger)
        #expect(await scheduler.notReadyReason() == "starting")
        try await scheduler.recover()
        #expect(await scheduler.notReadyReason() == nil)
    }

    @Test func aHubWhoseStoreCannotBeReadIsNotReadyButStillAlive() async throws {
        let store = try FailingStore()
        try await withHub({ $0.store = store }) { hub in
            #expect(try await hub.get("/readyz").object()["status"] as? String == "ready")
            store.failingCounts.store(true, ordering: .relaxed)
            let down = try await hub.get("/readyz")
            #expect(down.status == 503)
            #expect(down.text == #"{"reason":"the store cannot be read","status":"not_ready"}"#)
            #expect(try await hub.get("/healthz").status == 200)
            store.failingCounts.store(false, ordering: .relaxed)
            #expect(try await hub.get("/readyz").status == 200)
        }
    }
}
