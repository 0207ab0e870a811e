import Foundation
import Testing
import XNProtocol

@Suite("JobID")
struct JobIDTests {
    @Test("random ids are 40 lowercase hex characters and distinct")
    func random() {
        let ids = (0..<1000).map { _ in JobID.random().rawValue }
        for id in ids {
            #expect(id.count == 40)
            #expect(id.allSatisfy { "0123456789abcdef".contains($0) }, "\(id)")
        }
        #expect(Set(ids).count == ids.count)
    }

    @Test("a random id parses back to itself")
    func roundTrip() throws {
        let id = JobID.random()
        #expect(try #require(JobID(id.rawValue)) == id)
    }

    @Test("uppercase is accepted and lowercased")
    func uppercase() throws {
        let text = "0123456789ABCDEFabcdef0123456789ABCDEF01"
        let id = try #require(JobID(text))
        #expect(id.rawValue == text.lowercased())
        #expect(id == JobID(text.lowercased()))
    }

    @Test(
        "anything but 40 hex characters is refused",
        arguments: [
            "", String(repeating: "a", count: 39), String(repeating: "a", count: 41),
            String(repeating: "a", count: 39) + "g", String(repeating: "a", count: 39) + " ",
            String(repeating: "a", count: 38) + "é", "../" + String(repeating: "a", count: 37),
        ])
    func refused(text: String) {
        #expect(JobID(text) == nil)
    }

    @Test("decoding refuses a string that is not an id")
    func decoding() throws {
        let good = JobID.random()
        let decoded = try JSONDecoder().decode([JobID].self, from: Data("[\"\(good.rawValue)\"]".utf8))
        #expect(decoded == [good])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([JobID].self, from: Data(#"["abc"]"#.utf8))
        }
    }
}

@Suite("AttemptToken")
struct AttemptTokenTests {
    @Test("16 hex digits parse, in either case, and a token's text parses back to it")
    func parses() {
        #expect(AttemptToken(hex: "0123456789abcdef")?.rawValue == 0x0123_4567_89ab_cdef)
        #expect(AttemptToken(hex: "FFFFFFFFFFFFFFFF")?.rawValue == UInt64.max)
        #expect(AttemptToken(hex: "00000000000000a1")?.rawValue == 0xa1)
        for _ in 0..<100 {
            let token = AttemptToken.random()
            #expect(AttemptToken(hex: token.description) == token)
            #expect(AttemptToken(hex: token.description[...]) == token)
        }
    }

    @Test(
        "anything but 16 hex digits is not a token",
        arguments: [
            "", "0123456789abcde", "0123456789abcdef0", "0123456789abcdeg", "+123456789abcdef", "-123456789abcdef",
            " 123456789abcdef", "0x23456789abcdef", "0123456789abcdé",
        ])
    func refuses(_ text: String) {
        #expect(AttemptToken(hex: text) == nil)
    }
}
