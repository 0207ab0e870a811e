import Foundation
import Testing
import XNProtocol

private func encoded(_ view: JobView) throws -> [String: Any] {
    let data = try JSONEncoder().encode(view)
    return try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
}

@Suite("JobView")
struct JobViewTests {
    private let record: JobRecord = {
        let spec = JobSpec(command: "ls", name: "listing")
        var record = JobRecord(id: JobID.random(), spec: spec, createdAt: 1_700_000_000_123)
        record.state = .succeeded
        record.exitCode = 0
        record.stdoutBytes = 3
        return record
    }()

    @Test("a view without output (list) has no stdout or stderr fields")
    func withoutOutput() throws {
        let object = try encoded(JobView(record))
        #expect(object["stdout"] == nil)
        #expect(object["stderr"] == nil)
        #expect(object["stdout_bytes"] as? Int == 3)
        #expect(object["state"] as? String == "succeeded")
    }

    @Test("a view with output (get) carries both streams as text")
    func withOutput() throws {
        let view = JobView(record, stdout: Array("hi\n".utf8), stderr: [])
        let object = try encoded(view)
        #expect(object["stdout"] as? String == "hi\n")
        #expect(object["stderr"] as? String == "")
    }

    @Test("times are RFC 3339 UTC with the exact milliseconds")
    func times() {
        #expect(JobView(record).createdAt == "2023-11-14T22:13:20.123Z")
        #expect(JobView(record).startedAt == nil)
        #expect(Timestamp.format(0) == "1970-01-01T00:00:00.000Z")
        for millisecond in Int64(0)..<1000 {
            let text = Timestamp.format(1_700_000_000_000 + millisecond)
            let digits = String(millisecond + 1000).dropFirst()
            #expect(text == "2023-11-14T22:13:20.\(digits)Z")
        }
    }

    @Test("a view survives an encode and decode")
    func roundTrip() throws {
        let view = JobView(record, stdout: [0x61], stderr: [0x62])
        let back = try JSONDecoder().decode(JobView.self, from: JSONEncoder().encode(view))
        #expect(back == view)
    }
}
