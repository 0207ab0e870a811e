import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import XNStore

@testable import XNHub

/// The web page's HTTP side: where a browser lands, how it signs in, what a session cookie may do,
/// the job event stream. The page itself is tested in a real browser (scripts/browser_test.py).
@Suite(.timeLimit(.minutes(2)))
struct WebPageTests {
    @Test func aBrowserAtTheRootLandsOnThePageWhileAPIClientsKeepTheir501() async throws {
        try await withHub { hub in
            let browser = try await request(.GET, hub.url + "/", headers: [("Accept", "text/html,*/*")])
            #expect(browser.status == 200)
            #expect(browser.text.contains("<script src=\"/ui/app.js\""))
            let curl = try await request(.GET, hub.url + "/", headers: [("Accept", "*/*")])
            #expect(curl.status == 501)
            #expect(try curl.object()["message"] as? String == "Not Implemented")
        }
    }

    @Test func thePageIsServedWithHeadersThatKeepOtherScriptsOut() async throws {
        try await withHub { hub in
            let page = try await hub.get("/ui/")
            #expect(page.status == 200)
            #expect(page.headers["Content-Type"].first == "text/html; charset=utf-8")
            let policy = page.headers["Content-Security-Policy"].first ?? ""
            #expect(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"))
            #expect(page.headers["X-Content-Type-Options"].first == "nosniff")
            let script = try await hub.get("/ui/app.js")
            #expect(script.status == 200 && script.headers["Content-Type"].first?.hasPrefix("text/javascript") == true)
            #expect(script.text.contains("textContent"))
            #expect(try await hub.get("/ui/app.css").status == 200)
            #expect(try await hub.get("/ui/nothing.js").status == 404)
            // No xterm.js configured: its address says where it would come from.
            let xterm = try await hub.get("/ui/xterm/xterm.js")
            #expect(xterm.status == 404 && xterm.text.contains("fetch-xterm.sh"))
            let session = try await hub.get("/ui/session").object()
            #expect(session["tokens"] as? Bool == false && session["role"] as? String == "admin")
            #expect(session["xterm"] as? Bool == false)
        }
    }

    @Test func signingInSetsAStrictHttpOnlyCookieThatNeedsTheCSRFValueToChangeAnything() async throws {
        try await withHub { hub in
            let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
            let unknown = try await request(.POST, hub.url + "/ui/session", body: #"{"token":"xn_nope"}"#)
            #expect(unknown.status == 401 && unknown.text.contains("unknown token"))
            #expect(unknown.headers["Set-Cookie"].isEmpty)

            let signedIn = try await request(.POST, hub.url + "/ui/session", body: #"{"token":"\#(admin)"}"#)
            #expect(signedIn.status == 200)
            let cookie = signedIn.headers["Set-Cookie"].first ?? ""
            #expect(cookie.hasPrefix("xn_session=\(admin)"))
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"))
            let body = try signedIn.object()
            #expect(body["name"] as? String == "root" && body["role"] as? String == "admin")
            let csrf = try #require(body["csrf"] as? String)
            #expect(csrf.count == 32 && !csrf.contains(admin))

            let session = ("Cookie", "xn_session=\(admin)")
            #expect(try await request(.GET, hub.url + "/v1/jobs", headers: [session]).status == 200)
            let who = try await request(.GET, hub.url + "/ui/session", headers: [session]).object()
            #expect(who["csrf"] as? String == csrf)

            // A change by cookie alone is refused; with the CSRF value it goes through.
            let spec = #"{"command":"true"}"#
            let bare = try await request(.POST, hub.url + "/v1/jobs", body: spec, headers: [session])
            #expect(bare.status == 403 && bare.text.contains("X-XN-CSRF"))
            let wrong = try await request(
                .POST, hub.url + "/v1/jobs", body: spec,
                headers: [session, ("X-XN-CSRF", String(repeating: "0", count: 32))])
            #expect(wrong.status == 403 && wrong.text.contains("wrong"))
            let made = try await request(
                .POST, hub.url + "/v1/jobs", body: spec, headers: [session, ("X-XN-CSRF", csrf)])
            #expect(made.status == 201)
            #expect(try await hub.get("/v1/jobs").status == 401)  // nothing stored about sessions: no cookie, no access

            // A bearer header needs no CSRF value: it is not sent by a browser on its own.
            let bearer = try await request(
                .POST, hub.url + "/v1/jobs", body: spec, headers: [("Authorization", "Bearer \(admin)")])
            #expect(bearer.status == 201)

            let signOut = try await request(.DELETE, hub.url + "/ui/session", headers: [session, ("X-XN-CSRF", csrf)])
            #expect(signOut.status == 200)
            #expect(signOut.headers["Set-Cookie"].first?.contains("Max-Age=0") == true)
        }
    }

    @Test func aRevokedTokensCookieIsRefusedWithTheReason() async throws {
        try await withHub { hub in
            let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
            let user = try await hub.createToken(#"{"name":"carol","role":"submit"}"#, as: admin)
            let session = ("Cookie", "xn_session=\(user)")
            #expect(try await request(.GET, hub.url + "/ui/session", headers: [session]).status == 200)
            let revoked = try await request(
                .DELETE, hub.url + "/v1/tokens/carol", headers: [("Authorization", "Bearer \(admin)")])
            #expect(revoked.status == 200)
            let after = try await request(.GET, hub.url + "/ui/session", headers: [session])
            #expect(after.status == 401)
            #expect(after.text.contains("token 'carol' was revoked"))
        }
    }

    @Test func workerTokensCannotSignInAndOtherSitesCannotSignAnyoneIn() async throws {
        try await withHub { hub in
            let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
            let worker = try await hub.createToken(#"{"name":"w","role":"worker"}"#, as: admin)
            let refused = try await request(.POST, hub.url + "/ui/session", body: #"{"token":"\#(worker)"}"#)
            #expect(refused.status == 403)
            // Signing in is open to anyone, but not to pages of another origin (login CSRF).
            let forged = try await request(
                .POST, hub.url + "/ui/session", body: #"{"token":"\#(admin)"}"#,
                headers: [("Origin", "http://evil.example")])
            #expect(forged.status == 403 && forged.headers["Set-Cookie"].isEmpty)
            let signOut = try await request(
                .DELETE, hub.url + "/ui/session", headers: [("Sec-Fetch-Site", "cross-site")])
            #expect(signOut.status == 403)
        }
    }

    @Test func theEventStreamCarriesEachStateChangeOfAJob() async throws {
        try await withHub { hub in
            var stream = HTTPClientRequest(url: hub.url + "/ui/events")
            stream.method = .GET
            let response = try await HTTPClient.shared.execute(stream, timeout: .seconds(30))
            #expect(response.status == .ok)
            #expect(response.headers["Content-Type"].first == "text/event-stream; charset=utf-8")
            let id = try await hub.submit(#"{"command":"echo","args":["streamed"]}"#)
            var seen = ""
            var states: [String] = []
            for try await piece in response.body {
                seen += String(buffer: piece)
                // Whole events only: each ends with a blank line.
                while let end = seen.range(of: "\n\n") {
                    let event = String(seen[..<end.lowerBound])
                    seen = String(seen[end.upperBound...])
                    guard event.hasPrefix("event: job\ndata: ") else { continue }
                    let json = Data(event.dropFirst("event: job\ndata: ".count).utf8)
                    let job = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
                    if job["id"] as? String == id, let state = job["state"] as? String { states.append(state) }
                }
                if states.last == "succeeded" { break }
            }
            #expect(states.first == "running" || states.first == "queued")
            #expect(states.last == "succeeded")
        }
    }

    @Test func theJobListFiltersByOwnerLabelAndText() async throws {
        try await withHub { hub in
            let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
            let dave = try await hub.createToken(#"{"name":"dave","role":"submit"}"#, as: admin)
            func submit(_ json: String, as token: String) async throws -> String {
                let result = try await request(
                    .POST, hub.url + "/v1/jobs", body: json, headers: [("Authorization", "Bearer \(token)")])
                return try #require(try result.object()["id"] as? String)
            }
            let gpu = try await submit(#"{"command":"echo","args":["render frame"],"labels":{"gpu":"1"}}"#, as: admin)
            let mine = try await submit(#"{"command":"echo","args":["backup nightly"]}"#, as: dave)
            _ = try await submit(#"{"command":"true"}"#, as: admin)
            func ids(_ query: String) async throws -> [String] {
                let page = try await request(
                    .GET, hub.url + "/v1/jobs?" + query, headers: [("Authorization", "Bearer \(admin)")])
                let jobs = try #require(try page.object()["jobs"] as? [[String: Any]], "\(query): \(page.text)")
                return jobs.compactMap { $0["id"] as? String }
            }
            #expect(try await ids("owner=dave") == [mine])
            #expect(try await ids("label=gpu=1") == [gpu])
            #expect(try await ids("label=gpu=2").isEmpty)
            #expect(try await ids("q=nightly") == [mine])
            #expect(try await ids("q=" + String(gpu.prefix(10))) == [gpu])
            #expect(try await ids("q=echo&owner=root") == [gpu])
            let bad = try await request(
                .GET, hub.url + "/v1/jobs?label=gpu", headers: [("Authorization", "Bearer \(admin)")])
            #expect(bad.status == 400)
            let error = try bad.object()["error"] as? [String: Any]
            #expect(error?["field"] as? String == "label")
        }
    }

    @Test func xtermIsTakenOnlyFromARealBuild() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xn-xterm-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Debian bookworm's libjs-xterm: a stub of a few hundred bytes.
        try Data("// stub\n".utf8).write(to: URL(fileURLWithPath: folder + "/xterm.js"))
        try Data(".xterm {}\n".utf8).write(to: URL(fileURLWithPath: folder + "/xterm.css"))
        #expect(throws: XtermAssets.XtermMissing.self) { try XtermAssets.load(folder: folder) }
        #expect(XtermAssets.load(from: [folder, folder + "/none"]) == nil)
        let build = "var Terminal = {};\n" + String(repeating: "/* xterm */\n", count: 10_000)
        try Data(build.utf8).write(to: URL(fileURLWithPath: folder + "/xterm.js"))
        let assets = try #require(XtermAssets.load(from: [folder + "/none", folder]))
        #expect(assets.folder == folder)
        #expect(assets.files["xterm.js"]?.count == build.utf8.count && assets.files["xterm-addon-fit.js"] == nil)
        #expect(
            XtermAssets.candidates(executable: "/opt/xn/bin/xn", system: "/sys-xterm") == [
                "/opt/xn/share/xn/xterm", "/opt/share/xn/xterm", "/sys-xterm",
            ])
        #expect(XtermAssets.candidates(executable: ".build/release/xn").first == ".build/share/xn/xterm")
        #expect(
            XtermAssets.candidates(executable: ".build/x86_64-unknown-linux-gnu/release/xn")[1]
                == ".build/share/xn/xterm")
    }
}
