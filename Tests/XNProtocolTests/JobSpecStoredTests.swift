import Foundation
import Testing

@testable import XNProtocol

/// The hand-written reader of stored specs against Foundation's `JSONDecoder`: specs the store
/// writes are read by hand and come back whole; any other shape gets `JSONDecoder`'s answer.
@Suite("JobSpec stored JSON")
struct JobSpecStoredTests {
    typealias SeededGenerator = JobViewJSONTests.SeededGenerator

    /// Every control character, the characters JSON escapes, slashes, and text beyond ASCII.
    static let pieces: [String] =
        (0..<0x20).map { String(UnicodeScalar(UInt8($0))) } + [
            "\"", "\\", "/", "a", "Z", "0", " ", "\u{7F}", "é", "日本", "🙂", "_", "-", "key", "\u{FFFF}",
        ]

    func text(_ random: inout SeededGenerator, maxPieces: Int = 6) -> String {
        JobViewJSONTests.text(&random, from: Self.pieces, maxPieces: maxPieces)
    }

    func maybe<T>(_ random: inout SeededGenerator, _ make: (inout SeededGenerator) -> T) -> T? {
        JobViewJSONTests().maybe(&random, make)
    }

    func map(_ random: inout SeededGenerator) -> [String: String] {
        Dictionary(
            (0..<Int.random(in: 0...5, using: &random)).map { _ in (text(&random, maxPieces: 3), text(&random)) },
            uniquingKeysWith: { first, _ in first })
    }

    func spec(_ random: inout SeededGenerator) -> JobSpec {
        var spec = JobSpec(command: text(&random))
        spec.program = maybe(&random) { text(&$0) }
        spec.args = (0..<Int.random(in: 0...4, using: &random)).map { _ in text(&random) }
        spec.env = map(&random)
        spec.cwd = maybe(&random) { text(&$0) }
        spec.timeout = maybe(&random) { random in
            switch Int.random(in: 0..<4, using: &random) {
            case 0: Double(Int.random(in: 0...100_000, using: &random))
            case 1: Double.random(in: 0..<1, using: &random) / 1e6
            case 2: Double.random(in: 1e15..<1e22, using: &random)
            default: Double.random(in: 0..<3600, using: &random)
            }
        }
        spec.stdin = maybe(&random) { text(&$0, maxPieces: 40) }
        spec.name = maybe(&random) { text(&$0) }
        spec.callback = maybe(&random) { text(&$0) }
        spec.labels = map(&random)
        spec.retries = Int.random(in: 0...5, using: &random)
        spec.tty = maybe(&random) {
            JobTerminal(rows: Int.random(in: 1...500, using: &$0), cols: Int.random(in: 1...500, using: &$0))
        }
        spec.interactive = Bool.random(using: &random)
        spec.limits = maybe(&random) { random in
            JobLimits(
                cpu: maybe(&random) { Int.random(in: 1...100, using: &$0) },
                memory: maybe(&random) { Int.random(in: 1...Int.max, using: &$0) },
                files: maybe(&random) { Int.random(in: 1...100, using: &$0) },
                procs: maybe(&random) { Int.random(in: 1...100, using: &$0) },
                cpuPercent: maybe(&random) { Int.random(in: 1...800, using: &$0) })
        }
        spec.maxOutput = maybe(&random) { Int.random(in: 0...Int.max, using: &$0) }
        spec.isolate = Bool.random(using: &random)
        spec.network = Bool.random(using: &random)
        return spec
    }

    @Test("2,000 specs as the store writes them are read by hand, whole")
    func storedSpecsAreReadByHand() throws {
        var random = SeededGenerator(state: 21)
        var failures: [String] = []
        for _ in 0..<2000 {
            let spec = spec(&random)
            let stored = try JSONEncoder().encode(spec)
            let read = JobSpec.readStored(stored)
            if read != spec { failures.append(String(decoding: stored, as: UTF8.self)) }
        }
        #expect(failures.count == 0, "first not read back: \(failures.first ?? "")")
    }

    @Test("2,000 specs written by storedJSON come back whole, by hand and through JSONDecoder")
    func storedJSONRoundTrips() throws {
        var random = SeededGenerator(state: 34)
        var failures: [String] = []
        for _ in 0..<2000 {
            let spec = spec(&random)
            let stored = try spec.storedJSON()
            let byHand = JobSpec.readStored(stored)
            let decoded = try? JSONDecoder().decode(JobSpec.self, from: stored)
            if byHand != spec || decoded != spec { failures.append(String(decoding: stored, as: UTF8.self)) }
        }
        #expect(failures.count == 0, "first not read back: \(failures.first ?? "")")
    }

    @Test("storedJSON writes what encode(to:) writes, member for member")
    func storedJSONMatchesTheEncoder() throws {
        var random = SeededGenerator(state: 55)
        var failures: [String] = []
        for _ in 0..<500 {
            let spec = spec(&random)
            let stored = try spec.storedJSON()
            let written = try JSONSerialization.jsonObject(with: stored) as? NSDictionary
            let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(spec)) as? NSDictionary
            if written == nil || written != encoded { failures.append(String(decoding: stored, as: UTF8.self)) }
        }
        #expect(failures.count == 0, "first that differs: \(failures.first ?? "")")
    }

    @Test("a timeout JSON cannot hold is refused, as JSONEncoder refuses it")
    func infiniteTimeoutRefused() {
        var spec = JobSpec(command: "true")
        spec.timeout = .infinity
        #expect(throws: EncodingError.self) { try spec.storedJSON() }
    }

    /// Shapes the store does not write, each with what `JSONDecoder` makes of it.
    static let otherShapes: [String] = [
        #"{"command":"a","cwd":null}"#,
        #"{"command":"a","unknown":1}"#,
        #"{"command":"a","retries":1.0}"#,
        #"{"command":"a","retries":1e1}"#,
        #"{"command":"a","retries":01}"#,
        #"{"command":"a","retries":99999999999999999999}"#,
        #"{"command":"a","command":"b"}"#,
        #"{"command":"a","timeout":1e400}"#,
        #"{"command":"a","timeout":.5}"#,
        #"{"command":"a","timeout":-}"#,
        #"{"command":"a","tty":{"rows":1}}"#,
        #"{"command":"a","tty":{"rows":1,"cols":2,"x":3}}"#,
        #"{"command":"a","limits":{"cpu":1,"cpu":2}}"#,
        #"{"command":"\ud800"}"#,
        #"{"command":"\udc00"}"#,
        #"{"command":"\u00e9\ud83d\ude42"}"#,
        "{\"command\":\"a\u{01}\"}",
        #"{"command":"a"} x"#,
        #"{"command":"a",}"#,
        #"{"args":[]}"#,
        #"{"command":1}"#,
        #"{"command":"a","args":["b",]}"#,
        #"{"command":"a","env":{"k":"v","k":"w"}}"#,
        #"{"command":"a","interactive":1}"#,
        #"[]"#,
        "",
        " \n{ \"command\" : \"a\" , \"args\" : [ \"b\" , \"c\" ] , \"timeout\" : -2.5E+3 }\t",
    ]

    @Test("other shapes, and bytes that are not JSON, give what JSONDecoder gives")
    func otherShapesMatchTheDecoder() {
        var inputs = Self.otherShapes.map { Data($0.utf8) }
        inputs.append(Data([0x7B, 0x22, 0x63, 0x6F, 0x6D, 0x6D, 0x61, 0x6E, 0x64, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D]))
        for input in inputs {
            let expected = Result { try JSONDecoder().decode(JobSpec.self, from: input) }
            let decoded = Result { try JobSpec.decodeStored(input) }
            let label = String(decoding: input, as: UTF8.self)
            switch (expected, decoded) {
            case (.success(let expected), .success(let decoded)): #expect(expected == decoded, "\(label)")
            case (.failure, .failure): break
            default: Issue.record("\(label): JSONDecoder gave \(expected), decodeStored \(decoded)")
            }
        }
    }

    @Test("escapes, surrogate pairs and spacing the store never writes are still read by hand")
    func escapesAreReadByHand() {
        let spec = JobSpec.readStored(
            Data(
                #" { "command" : "\u00e9\ud83d\ude42\n\/\"" , "args" : [ ] , "timeout" : -2.5E+3 , "tty" : { "cols" : 80 , "rows" : 24 } } "#
                    .utf8))
        #expect(spec?.command == "é🙂\n/\"")
        #expect(spec?.args == [])
        #expect(spec?.timeout == -2500)
        #expect(spec?.tty == JobTerminal(rows: 24, cols: 80))
    }
}
