import Foundation
import Testing
import XNProtocol

/// The hand-written JSON of job views against Foundation's `JSONEncoder`, set up as the hub's
/// responses were before: sorted keys, slashes unescaped. Clients see the same bytes either way.
@Suite("JobView JSON")
struct JobViewJSONTests {
    /// SplitMix64: the same views on every run, so a failure can be looked at again.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    func foundation(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return Array(try encoder.encode(value))
    }

    /// Every control character, the characters JSON escapes, slashes, and text beyond ASCII.
    static let pieces: [String] =
        (0..<0x20).map { String(UnicodeScalar(UInt8($0))) } + [
            "\"", "\\", "/", "a", "Z", "0", " ", "\u{7F}", "é", "日本", "🙂", "_", "-", "key", "cpu",
        ]

    func text(_ random: inout SeededGenerator, maxPieces: Int = 6) -> String {
        Self.text(&random, from: Self.pieces, maxPieces: maxPieces)
    }

    /// Up to `maxPieces` of `pieces`, joined: the seeded texts both JSON suites feed their code.
    static func text(_ random: inout SeededGenerator, from pieces: [String], maxPieces: Int) -> String {
        (0..<Int.random(in: 0...maxPieces, using: &random)).map { _ in pieces.randomElement(using: &random)! }
            .joined()
    }

    func maybe<T>(_ random: inout SeededGenerator, _ make: (inout SeededGenerator) -> T) -> T? {
        Bool.random(using: &random) ? make(&random) : nil
    }

    /// Whole numbers, fractions, and values Swift writes with an exponent.
    func number(_ random: inout SeededGenerator) -> Double {
        switch Int.random(in: 0..<5, using: &random) {
        case 0: Double(Int.random(in: 0...100_000, using: &random))
        case 1: Double(Int.random(in: 1...99_999, using: &random)) / 1000
        case 2: Double.random(in: 0..<1, using: &random) / 1e6
        case 3: Double.random(in: 1e15..<1e22, using: &random)
        default: Double.random(in: 0..<3600, using: &random)
        }
    }

    func view(_ random: inout SeededGenerator) -> JobView {
        let spec = JobSpec(command: "true")
        var view = JobView(JobRecord(id: JobID.random(), spec: spec, createdAt: 1_700_000_000_000))
        view.name = maybe(&random) { text(&$0) }
        view.state = JobState.allCases.randomElement(using: &random)!
        view.command = text(&random)
        view.program = maybe(&random) { text(&$0) }
        view.args = (0..<Int.random(in: 0...4, using: &random)).map { _ in text(&random) }
        view.cwd = maybe(&random) { text(&$0) }
        view.timeout = maybe(&random) { number(&$0) }
        view.callback = maybe(&random) { text(&$0) }
        view.createdAt = text(&random)
        view.startedAt = maybe(&random) { text(&$0) }
        view.finishedAt = maybe(&random) { text(&$0) }
        view.exitCode = maybe(&random) { Int32.random(in: -300...300, using: &$0) }
        view.signal = maybe(&random) { Int32.random(in: 1...64, using: &$0) }
        view.err = maybe(&random) { text(&$0) }
        view.stdout = maybe(&random) { text(&$0, maxPieces: 40) }
        view.stderr = maybe(&random) { text(&$0, maxPieces: 40) }
        view.stdoutBytes = Int.random(in: 0...Int.max, using: &random)
        view.stderrBytes = Int.random(in: 0...10, using: &random)
        view.stdoutTruncated = Bool.random(using: &random)
        view.stderrTruncated = Bool.random(using: &random)
        view.callbackStatus = maybe(&random) { text(&$0) }
        view.callbackDelivery = maybe(&random) { random in
            var delivery = CallbackDeliveryView(CallbackDelivery())
            delivery.state = [.pending, .delivered, .failed].randomElement(using: &random)!
            delivery.attempts = Int.random(in: 0...9, using: &random)
            delivery.lastResult = maybe(&random) { text(&$0) }
            delivery.lastAttemptAt = maybe(&random) { text(&$0) }
            delivery.nextAttemptAt = maybe(&random) { text(&$0) }
            return delivery
        }
        view.usage = maybe(&random) { random in
            JobUsage(
                cpuUserSeconds: number(&random), cpuSystemSeconds: number(&random),
                peakMemoryBytes: maybe(&random) { Int.random(in: 0...Int.max, using: &$0) })
        }
        view.worker = maybe(&random) { text(&$0) }
        view.labels = maybe(&random) { random in
            Dictionary(
                (0..<Int.random(in: 0...5, using: &random)).map { _ in (text(&random, maxPieces: 3), text(&random)) },
                uniquingKeysWith: { first, _ in first })
        }
        view.retries = maybe(&random) { Int.random(in: 0...5, using: &$0) }
        view.tty = maybe(&random) { JobTerminal(rows: Int.random(in: 1...500, using: &$0), cols: 80) }
        view.interactive = maybe(&random) { Bool.random(using: &$0) }
        view.attempts = Int.random(in: 0...3, using: &random)
        view.limits = maybe(&random) { random in
            JobLimits(
                cpu: maybe(&random) { Int.random(in: 1...100, using: &$0) },
                memory: maybe(&random) { Int.random(in: 1...Int.max, using: &$0) },
                files: maybe(&random) { Int.random(in: 1...100, using: &$0) },
                procs: maybe(&random) { Int.random(in: 1...100, using: &$0) },
                cpuPercent: maybe(&random) { Int.random(in: 1...800, using: &$0) })
        }
        view.maxOutput = maybe(&random) { Int.random(in: 0...Int.max, using: &$0) }
        view.isolate = maybe(&random) { Bool.random(using: &$0) }
        view.network = maybe(&random) { Bool.random(using: &$0) }
        view.owner = maybe(&random) { text(&$0) }
        view.waiting = maybe(&random) { text(&$0) }
        return view
    }

    @Test(
        "2,000 views with every field present or absent, escapes, text beyond ASCII and odd numbers read as the encoder writes them"
    )
    func viewsMatchTheEncoder() throws {
        var random = SeededGenerator(state: 11)
        var mismatches: [(String, String)] = []
        for _ in 0..<2000 {
            let view = view(&random)
            let expected = try foundation(view)
            let written = view.json()
            if written != expected {
                mismatches.append((String(decoding: written, as: UTF8.self), String(decoding: expected, as: UTF8.self)))
            }
        }
        #expect(mismatches.isEmpty, "first mismatch (written, encoder's): \(mismatches.first.map { "\($0)" } ?? "")")
    }

    @Test("a page of views, with and without a next page, reads as the encoder writes it")
    func pagesMatchTheEncoder() throws {
        var random = SeededGenerator(state: 12)
        for count in [0, 1, 50] {
            let jobs = (0..<count).map { _ in view(&random) }
            for next in [nil, "12345"] {
                let page = JobPage(jobs: jobs, next: next)
                #expect(page.json() == (try foundation(page)), "\(count) jobs, next \(next ?? "absent")")
            }
        }
    }
}
