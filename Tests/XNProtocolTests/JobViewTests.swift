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

    @Test("times match Foundation's RFC 3339 formatter across leap years, month ends and before 1970")
    func timesMatchFoundation() {
        // Foundation's ISO 8601 style, as the hub formatted times before: the oracle.
        func foundation(_ milliseconds: Int64) -> String {
            Date(timeIntervalSince1970: (Double(milliseconds) + 0.5) / 1000).formatted(
                .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        }
        #expect(Timestamp.format(951_868_799_999) == "2000-02-29T23:59:59.999Z")
        #expect(Timestamp.format(4_107_542_400_000) == "2100-03-01T00:00:00.000Z")
        #expect(Timestamp.format(-1) == "1969-12-31T23:59:59.999Z")
        // Every 3 days 7 hours 1 minute and 1.001 seconds from 1901 to 2199.
        let step: Int64 = ((3 * 24 + 7) * 60 + 1) * 60_000 + 1_001
        var mismatches: [Int64] = []
        for milliseconds in stride(from: Int64(-2_177_452_800_000), to: 7_258_118_400_000, by: Int(step))
        where Timestamp.format(milliseconds) != foundation(milliseconds) {
            mismatches.append(milliseconds)
        }
        // And the last millisecond of every day around each 29 February of 1996-2024.
        var daysBefore: Int64 = 0
        for year in 1970...2024 {
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            if year >= 1996 && leap {
                let march1: Int64 = (daysBefore + 31 + 29) * 86_400_000
                for day in Int64(-3)...3 {
                    let milliseconds = march1 + day * 86_400_000 - 1
                    if Timestamp.format(milliseconds) != foundation(milliseconds) { mismatches.append(milliseconds) }
                }
            }
            daysBefore += leap ? 366 : 365
        }
        #expect(
            mismatches.isEmpty,
            "first mismatches: \(mismatches.prefix(5).map { ($0, Timestamp.format($0), foundation($0)) })")
    }

    @Test("a view survives an encode and decode")
    func roundTrip() throws {
        let view = JobView(record, stdout: [0x61], stderr: [0x62])
        let back = try JSONDecoder().decode(JobView.self, from: JSONEncoder().encode(view))
        #expect(back == view)
    }
}
