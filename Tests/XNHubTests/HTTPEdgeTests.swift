import Foundation
import Glibc
import Testing

/// Requests at the edges of HTTP/1.1 get an answer at once: never a dropped connection or a wait
/// for the head deadline.
@Suite(.timeLimit(.minutes(2)))
struct HTTPEdgeTests {
    /// curl as a user runs it; its status line, HTTP version and body.
    static func curl(_ arguments: [String]) async throws -> (status: Int32, out: String, err: String) {
        let child = try ChildProcess("/usr/bin/curl", ["-sS", "-m", "10"] + arguments)
        let status = try await child.exitStatus()
        return (status, child.stdoutText, child.stderrText)
    }

    @Test func anH2cUpgradeAndAnUpgradeWithoutConnectionUpgradeAreServedAsHTTP1() async throws {
        try await withHub { hub in
            // curl --http2 on http:// asks to upgrade to h2c; the hub answers in HTTP/1.1.
            let listed = try await Self.curl(["--http2", "-w", "\n%{http_code} %{http_version}", hub.url + "/v1/jobs"])
            #expect(listed.status == 0, "\(listed.err)")
            #expect(listed.out.hasSuffix("\n200 1.1"), "\(listed.out)")
            #expect(listed.out.hasPrefix(#"{"jobs":["#), "\(listed.out)")
            let submitted = try await Self.curl([
                "--http2", "-XPOST", "-d", #"{"command":"echo","args":"h2c"}"#, "-w", "\n%{http_code}", hub.url + "/",
            ])
            #expect(submitted.out.hasSuffix("\n202"), "\(submitted.out) \(submitted.err)")
            // Upgrade named, Connection not saying upgrade: a plain request.
            for upgrade in ["websocket", "h2c", "foo/1"] {
                let raw = try RawConnection(port: hub.port)
                try raw.send(
                    "GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: \(upgrade)\r\nConnection: close\r\n\r\n")
                let answer = String(decoding: try raw.readToEnd(timeout: .seconds(10)), as: UTF8.self)
                #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(upgrade): \(answer.prefix(200))")
                #expect(answer.contains(#"{"jobs":["#), "\(upgrade)")
            }
        }
    }

    @Test func anHTTP2PrefaceIsRefusedAtOnceWithHTTP2sOwnGoaway() async throws {
        try await withHub { hub in
            let raw = try RawConnection(port: hub.port)
            try raw.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            // Well inside the 10 s head deadline: the refusal, then the hub closes.
            let answer = try raw.readToEnd(timeout: .seconds(5))
            #expect(Array(answer.prefix(9)) == [0, 0, 0, 4, 0, 0, 0, 0, 0], "an empty SETTINGS frame first")
            let goaway = Array(answer.dropFirst(9))
            #expect(goaway.count >= 17 && goaway[3] == 7, "then GOAWAY: \(goaway)")
            #expect(Array(goaway.dropFirst(13).prefix(4)) == [0, 0, 0, 0xd], "with HTTP_1_1_REQUIRED")
            #expect(String(decoding: goaway.dropFirst(17), as: UTF8.self) == "xn hubs speak HTTP/1.1")
            // curl says so in its own words.
            let curl = try await Self.curl(["--http2-prior-knowledge", hub.url + "/v1/jobs"])
            #expect(curl.status != 0 && curl.status != 28, "refused, not timed out: \(curl.status) \(curl.err)")
        }
    }

    @Test func attachingToAJobThatDoesNotExistIs404BeforeAnyUpgrade() async throws {
        try await withHub { hub in
            for (path, message) in [
                ("/v1/jobs/\(String(repeating: "0", count: 40))/attach", "no job with id"),
                ("/v1/jobs/not-a-job/attach", "is not a job id"),
            ] {
                let raw = try RawConnection(port: hub.port)
                try raw.send(
                    "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                        + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
                let answer = try raw.readResponse(timeout: .seconds(10))
                #expect(answer.hasPrefix("HTTP/1.1 404 Not Found\r\n"), "\(path): \(answer.prefix(200))")
                #expect(answer.contains(#""code":"job_not_found""#) && answer.contains(message), "\(answer)")
            }
            // A job that exists still upgrades.
            let id = try await hub.submit(#"{"command":"echo","args":["here"]}"#)
            let seen = try await attach(hub, id) { _, seen in try await seen.waitForExit() }
            #expect(seen.text == "here\n")
        }
    }
}
