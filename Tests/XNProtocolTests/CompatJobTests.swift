import Foundation
import Testing
import XNProtocol

private let id = JobID("00112233445566778899aabbccddeeff00112233")!

private func record(
    command: String = "echo", args: [String] = ["a", "b"], code: Int32? = nil, err: String? = nil,
    callback: String? = nil
) -> JobRecord {
    var record = JobRecord(id: id, spec: JobSpec(command: command, args: args, callback: callback), createdAt: 0)
    record.exitCode = code
    record.err = err
    return record
}

/// `json` decoded with Foundation, which is what a client would do.
private func decode(_ json: [UInt8]) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
}

@Suite("CompatJob")
struct CompatJobTests {
    @Test("a running job has http-runner's key order and explicit nulls")
    func runningShape() {
        let json = CompatJob(record(), stdout: [], stderr: []).json()
        let expected = """
            {"id":"00112233445566778899aabbccddeeff00112233","command":"echo","arguments":["a","b"],\
            "stdout":"","stderr":"","code":null,"err":null,"callback":null}
            """
        #expect(String(decoding: json, as: UTF8.self) == expected)
    }

    @Test("a finished job carries code, err and callback in place")
    func finishedShape() {
        let job = CompatJob(
            record(args: [], code: 3, err: "boom", callback: "http://h/cb"), stdout: Array("out\n".utf8),
            stderr: Array("bad\n".utf8))
        let expected = """
            {"id":"00112233445566778899aabbccddeeff00112233","command":"echo","arguments":[],\
            "stdout":"out\\n","stderr":"bad\\n","code":3,"err":"boom","callback":"http://h/cb"}
            """
        #expect(String(decoding: job.json(), as: UTF8.self) == expected)
    }

    @Test("strings are escaped so any client decodes them back exactly")
    func escaping() throws {
        let tricky = "say \"hi\" \\ back\nslash\r\ttab \u{1}\u{1f}\u{7f} é 日本 🎉 </script>"
        let job = CompatJob(
            record(command: "c\"md", args: [tricky, "\\"], code: -1, err: tricky, callback: "https://h/?q=\"x\""),
            stdout: Array(tricky.utf8), stderr: Array("\0nul".utf8))
        let json = job.json()
        let object = try decode(json)
        #expect(object["id"] as? String == id.rawValue)
        #expect(object["command"] as? String == "c\"md")
        #expect(object["arguments"] as? [String] == [tricky, "\\"])
        #expect(object["stdout"] as? String == tricky)
        #expect(object["stderr"] as? String == "\0nul")
        #expect((object["code"] as? NSNumber)?.intValue == -1)
        #expect(object["err"] as? String == tricky)
        #expect(object["callback"] as? String == "https://h/?q=\"x\"")

        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains(#"\u0001"#))
        #expect(text.contains(#"\u0000nul"#))
        #expect(!json.contains(where: { $0 < 0x20 }), "raw control bytes are not valid JSON")
        #expect(text.contains("é 日本 🎉"), "non-ASCII stays as UTF-8, not \\u escapes")
    }

    @Test("output that is not UTF-8 still gives valid JSON, with replacement characters")
    func invalidUTF8() throws {
        let job = CompatJob(record(), stdout: [0x61, 0xff, 0xfe, 0x62], stderr: [0xc3])
        let object = try decode(job.json())
        #expect(object["stdout"] as? String == "a\u{FFFD}\u{FFFD}b")
        #expect(object["stderr"] as? String == "\u{FFFD}")
    }

    @Test("null fields decode as JSON null")
    func nulls() throws {
        let object = try decode(CompatJob(record(), stdout: [], stderr: []).json())
        for key in ["code", "err", "callback"] {
            #expect(object[key] is NSNull, "\(key)")
        }
    }
}
