import Foundation
import Logging
import XNProtocol
import XNStore

/// Records an attach session that may type into its job: what it was shown, what it typed, its
/// resizes and controls, with their times. Events are written in batches (every half second or
/// 256 events), in order; output beyond `maxOutputBytes` is left out and marked.
actor TranscriptRecorder {
    let session: Int64
    private let store: any TranscriptStore
    private let logger: Logger
    private let began = ContinuousClock.now
    private var pending: [TranscriptEvent] = []
    private var flushing = false
    private var lastFlush = ContinuousClock.now
    private var outputBytes = 0

    /// Output kept per session: an audit trail, not a second copy of a job's gigabytes.
    static let maxOutputBytes = 64 << 20

    private init(session: Int64, store: any TranscriptStore, logger: Logger) {
        self.session = session
        self.store = store
        self.logger = logger
    }

    /// Starts the transcript of a session attaching to `job`; nil if the store cannot (the
    /// session goes on, and the failure is logged).
    static func start(
        job: JobRecord, token: String?, peer: String, store: any TranscriptStore, logger: Logger
    ) async -> TranscriptRecorder? {
        let size = job.spec.tty ?? .standard
        do {
            let session = try await store.startTranscript(
                job: job.id, token: token, peer: peer, at: Timestamp.now(), rows: size.rows, cols: size.cols)
            return TranscriptRecorder(session: session, store: store, logger: logger)
        } catch {
            logger.error("cannot record a transcript of the attach to \(job.id): \(error)")
            return nil
        }
    }

    func output(_ bytes: ArraySlice<UInt8>) async {
        guard outputBytes < Self.maxOutputBytes else { return }
        let kept = bytes.prefix(Self.maxOutputBytes - outputBytes)
        outputBytes += kept.count
        await add(.output, Array(kept))
        if outputBytes >= Self.maxOutputBytes {
            await add(.marker, Array("transcript output limit reached: later output is not recorded".utf8))
        }
    }

    func input(_ bytes: [UInt8]) async { await add(.input, bytes) }

    func resize(rows: Int, cols: Int) async { await add(.resize, Array("\(cols)x\(rows)".utf8)) }

    func marker(_ label: String) async { await add(.marker, Array(label.utf8)) }

    /// Writes what is left and marks the session ended.
    func finish() async {
        while flushing { try? await Task.sleep(for: .milliseconds(5)) }
        await flush()
        do {
            try await store.endTranscript(session, at: Timestamp.now())
        } catch {
            logger.error("cannot end transcript \(session): \(error)")
        }
    }

    private func add(_ kind: TranscriptEvent.Kind, _ data: [UInt8]) async {
        let elapsed = ContinuousClock.now - began
        let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        pending.append(TranscriptEvent(at: milliseconds, kind: kind, data: data))
        if !flushing && (pending.count >= 256 || ContinuousClock.now - lastFlush >= .milliseconds(500)) {
            await flush()
        }
    }

    private func flush() async {
        guard !flushing, !pending.isEmpty else { return }
        flushing = true
        let batch = pending
        pending = []
        lastFlush = ContinuousClock.now
        do {
            try await store.appendTranscript(session, batch)
        } catch {
            logger.error("cannot record transcript \(session): \(error)")
        }
        flushing = false
    }
}

/// Renders a transcript as asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): a
/// JSON header line, then one `[seconds, code, data]` line per event.
enum Asciicast {
    static func render(_ info: TranscriptInfo, _ events: [TranscriptEvent]) -> [UInt8] {
        var header: [String: Any] = [
            "version": 2, "width": info.cols, "height": info.rows, "timestamp": info.startedAt / 1000,
            "title": "xn job \(info.job), session \(info.session)",
            "env": ["TERM": "xterm-256color"],
        ]
        var who: [String: Any] = ["peer": info.peer]
        if let token = info.token { who["token"] = token }
        header["xn"] = who
        var lines = [json(header)]
        // Output pieces may split a UTF-8 character: carry the incomplete end to the next piece.
        var carry: [UInt8] = []
        for event in events {
            var data = event.data
            if event.kind == .output {
                data = carry + data
                let cut = completeUTF8Prefix(data)
                carry = Array(data[cut...])
                data = Array(data[..<cut])
            }
            let seconds = Double(event.at) / 1000
            lines.append(json([seconds, event.kind.rawValue, String(decoding: data, as: UTF8.self)]))
        }
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    /// How many leading bytes of `bytes` end on a whole UTF-8 character (all but a cut-off tail).
    static func completeUTF8Prefix(_ bytes: [UInt8]) -> Int {
        var start = bytes.count
        // Find the start of the last character: at most 3 continuation bytes back.
        while start > 0 && bytes.count - start < 4 && bytes[start - 1] & 0xC0 == 0x80 { start -= 1 }
        guard start > 0 else { return bytes.count }
        let lead = bytes[start - 1]
        let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
        return bytes.count - (start - 1) < length ? start - 1 : bytes.count
    }

    private static func json(_ value: Any) -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("null".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
