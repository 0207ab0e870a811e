import Foundation
import Testing

/// The audit log: a line for every submission, cancel, signal and attach, whatever the log level.
@Suite(.timeLimit(.minutes(2)))
struct AuditTests {
    @Test func everySubmissionCancelSignalAndAttachIsLoggedWithItsJobAndPeer() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder())  // --log-level warning
        defer { hub.killNow() }
        let sleeper = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
        let compat = try await request(.POST, hub.url + "/", body: #"{"command":"echo","args":"a b"}"#)
        let compatID = try #require(try compat.object()["id"] as? String)
        try await eventually("running") { try await hub.state(sleeper) == "running" ? true : nil }
        _ = try await request(.POST, hub.url + "/v1/jobs/\(sleeper)/signal", body: #"{"signal":"CONT"}"#)
        _ = try await request(.POST, hub.url + "/v1/jobs/\(sleeper)/cancel")
        _ = try await runXN(["attach", "--read-only", compatID], hub: hub.url)
        let log = try await eventually("audit lines") { () -> String? in
            let text = hub.child.stdoutText + hub.child.stderrText
            return text.contains("audit: attach") ? text : nil
        }
        let lines = log.split(separator: "\n").filter { $0.contains("audit:") }
        func line(_ action: String, _ job: String) -> Substring? {
            lines.first { $0.contains("audit: \(action)") && $0.contains("job=\(job)") }
        }
        #expect(line("submit", sleeper)?.contains("command=sleep 30") == true)
        #expect(line("submit", compatID)?.contains("command=echo a b") == true)
        #expect(line("signal", sleeper)?.contains("signal=18") == true)
        #expect(line("cancel", sleeper) != nil)
        #expect(line("attach", compatID)?.contains("mode=read-only") == true)
        #expect(lines.allSatisfy { $0.contains("from=127.0.0.1:") }, "\(lines)")
    }

    @Test func newlinesAndControlCharactersCannotForgeOrHideAuditLines() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder())
        defer { hub.killNow() }
        let forged = "x\n2026-01-01T00:00:00+0000 notice xn.hub: from=10.0.0.1 [XNHub] audit: forged"
        let body = try JSONSerialization.data(
            withJSONObject: ["command": "echo", "args": [forged, "\u{1b}[2Jcleared", "tab\there"]])
        let id = try await hub.submit(String(decoding: body, as: UTF8.self))
        let line = try await eventually("the submit line") { () -> String? in
            (hub.child.stdoutText + hub.child.stderrText).split(separator: "\n")
                .first { $0.contains("audit: submit") && $0.contains("job=\(id)") }.map(String.init)
        }
        let log = hub.child.stdoutText + hub.child.stderrText
        #expect(!log.split(separator: "\n").contains { $0.hasPrefix("2026-01-01") }, "no forged line")
        #expect(line.contains(#"x\n2026-01-01T00:00:00+0000 notice"#), "\(line)")
        #expect(line.contains(#"\u{1b}[2Jcleared"#), "\(line)")
        #expect(line.contains(#"tab\there"#), "\(line)")
        #expect(!log.contains("\u{1b}"), "no escape character reaches the log")
    }
}
