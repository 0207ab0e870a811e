import Foundation
import Testing

@testable import XNHub

/// Attach sessions that can type are recorded as asciicast v2; an admin fetches them.
@Suite(.timeLimit(.minutes(2)))
struct TranscriptTests {
    @Test func aTypingSessionIsRecordedAndAWatcherIsNot() async throws {
        try await withHub { hub in
            let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
            let alice = try await hub.createToken(#"{"name":"alice","role":"submit"}"#, as: admin)
            let reader = try await hub.createToken(#"{"name":"reader","role":"read"}"#, as: admin)
            let id = try await hub.submit(#"{"command":"cat","tty":{"rows":30,"cols":100}}"#, token: alice)
            _ = try await attach(hub, id, query: "mode=read-only", token: reader) { outbound, _ in
                try await outbound.write(.text(#"{"type":"detach"}"#))
            }
            _ = try await attach(hub, id, token: alice) { outbound, seen in
                try await outbound.write(.binary(.init(string: "héllo\r")))
                try await seen.waitFor("héllo")
                try await outbound.write(.text(#"{"type":"resize","rows":40,"cols":120}"#))
                try await outbound.write(.text(#"{"type":"terminate"}"#))
                try await seen.waitForExit()
            }
            let asAdmin = [("Authorization", "Bearer \(admin)")]
            let list = try await eventually("the session's transcript is complete") { () -> [[String: Any]]? in
                let sessions =
                    try await request(.GET, hub.url + "/v1/jobs/\(id)/transcripts", headers: asAdmin).object()[
                        "transcripts"] as? [[String: Any]] ?? []
                return sessions.first?["ended_at"] != nil ? sessions : nil
            }
            #expect(list.count == 1, "only the session that could type is recorded")
            #expect(list.first?["token"] as? String == "alice")
            let peer = list.first?["peer"] as? String ?? ""
            #expect(peer.hasPrefix("127.0.0.1:"))
            let session = try #require(list.first?["session"] as? Int)

            let cast = try await request(.GET, hub.url + "/v1/jobs/\(id)/transcripts/\(session)", headers: asAdmin)
            #expect(cast.status == 200)
            #expect(cast.headers["Content-Type"].first == "application/x-asciicast")
            let lines = cast.text.split(separator: "\n").map(String.init)
            let header = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            #expect(header["version"] as? Int == 2)
            #expect(header["width"] as? Int == 100 && header["height"] as? Int == 30)
            let events = try lines.dropFirst().map { line -> (Double, String, String) in
                let array = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [Any])
                return (array[0] as? Double ?? -1, array[1] as? String ?? "", array[2] as? String ?? "")
            }
            #expect(events.contains { $0.1 == "i" && $0.2 == "héllo\r" })
            #expect(events.contains { $0.1 == "o" && $0.2.contains("héllo") })
            #expect(events.contains { $0.1 == "r" && $0.2 == "120x40" })
            #expect(events.contains { $0.1 == "m" && $0.2 == "terminate" })
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.0 <= $1.0 }, "times never go back")

            // The CLI prints the same, for an admin only.
            let printed = try await runXN(["audit", "transcript", id], hub: hub.url, environment: ["XN_TOKEN": admin])
            #expect(printed.status == 0 && printed.stdout == cast.text, "\(printed.stderr)")
            let listed = try await runXN(
                ["audit", "transcript", "--list", id], hub: hub.url, environment: ["XN_TOKEN": admin])
            #expect(listed.stdout.contains("alice"))
            let refused = try await runXN(["audit", "transcript", id], hub: hub.url, environment: ["XN_TOKEN": alice])
            #expect(refused.status == 1 && refused.stderr.contains("needs admin"))
        }
    }

    @Test func outputSplitInsideACharacterIsJoinedBeforeItIsWritten() {
        let bytes = Array("aé".utf8)  // 61 c3 a9
        #expect(Asciicast.completeUTF8Prefix(Array(bytes.prefix(2))) == 1)
        #expect(Asciicast.completeUTF8Prefix(bytes) == 3)
        #expect(Asciicast.completeUTF8Prefix(Array("€".utf8.prefix(2))) == 0)
        #expect(Asciicast.completeUTF8Prefix([0x61, 0x80]) == 2, "a stray continuation byte is not held back")
    }
}
