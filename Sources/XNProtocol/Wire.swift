/// The worker ↔ hub protocol: `WorkerMessage` and `HubMessage` as JSON text frames, output as
/// binary frames (`OutputFrame`). The hub's own slots speak the same messages as plain values
/// over an in-process link (`InProcessWorker`).
///
///     worker                                hub
///       │── hello (name, labels, slots, attempts it holds) ─▶│
///       │◀─ welcome (heartbeat) | refused (reason) ──────────│
///       │◀─ assign (attempt, job, spec, output limit) ───────│
///       │── started (attempt, pid) ─────────────────────────▶│
///       │══ output frames (stream, attempt, offset, bytes) ═▶│
///       │◀─ ack (attempt, stdout, stderr: bytes stored) ─────│
///       │── ended (attempt, how it ended, bytes written) ───▶│  after its last byte of output
///       │◀─ forget (attempt) ────────────────────────────────│  the end is stored
///       │◀─ cancel | kill (reason) | signal ─────────────────│
///       │◀─ input (base64) | close_input | resize ───────────│
///       │◀═ input frames (attempt, bytes) ═══════════════════│  instead of input, to a worker
///                                                               whose hello has inputFrames
///
/// Every attempt of a job has its own token; the hub ignores reports for tokens it moved past
/// and tells the worker to kill them, so a late worker cannot overwrite a result.
///
/// On a new connection the hub's first ack for an attempt says where its copy ends, and the
/// worker sends from there. A frame beyond that offset (an empty one, at least) says the bytes
/// between are gone: the worker let them go when they were acknowledged, and the hub lost them
/// since (its machine crashed before its commits reached the disk). The hub then fails the job,
/// naming the lost bytes.
public enum WireProtocol {
    /// The WebSocket subprotocol; a different one is refused with a reason. v2: typed messages
    /// per direction, one stop reason in an attempt's end. v3: a spec may ask for isolation and
    /// for limits only a cgroup holds, which a v2 worker would silently run without.
    public static let subprotocol = "xn.v3"
    /// The hub's route for workers.
    public static let workerPath = "/v1/worker"
    /// Largest frame either side accepts.
    public static let maxFrameBytes = 1 << 20
    /// The worker name of the hub's own slots; no remote worker may take it.
    public static let inProcessWorkerName = "local"
    /// How a refusal starts when the worker's hello claims more than its token grants: no retry
    /// can change that, so the worker stops.
    public static let grantRefusalPrefix = "its token '"
}

/// The header of a binary frame of output: stream, attempt token, offset (both big-endian), then
/// the bytes.
public enum OutputFrame {
    public static let headerSize = 17

    /// The 17 header bytes; the bytes of output follow them.
    public static func header(stream: OutputStreamKind, attempt: AttemptToken, offset: Int) -> [UInt8] {
        var out: [UInt8] = [stream.rawValue]
        out.reserveCapacity(headerSize)
        for shift in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: attempt.rawValue >> UInt64(shift)))
        }
        for shift in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: UInt64(offset) >> UInt64(shift)))
        }
        return out
    }

    /// Parses a header; nil when it is too short or names no known stream.
    public static func parseHeader(
        _ frame: some Collection<UInt8>
    ) -> (stream: OutputStreamKind, attempt: AttemptToken, offset: Int)? {
        guard frame.count >= headerSize else { return nil }
        var iterator = frame.makeIterator()
        guard let stream = OutputStreamKind(rawValue: iterator.next()!) else { return nil }
        var attempt: UInt64 = 0
        var offset: UInt64 = 0
        for _ in 0..<8 { attempt = attempt << 8 | UInt64(iterator.next()!) }
        for _ in 0..<8 { offset = offset << 8 | UInt64(iterator.next()!) }
        guard offset <= UInt64(Int.max) else { return nil }
        return (stream, AttemptToken(attempt), Int(offset))
    }

    /// A whole frame for `piece`.
    public static func encode(_ piece: OutputPiece) -> [UInt8] {
        header(stream: piece.stream, attempt: piece.attempt, offset: piece.offset) + piece.bytes
    }

    /// Parses a whole frame; nil when it is too short or names no known stream.
    public static func decode(_ frame: some Collection<UInt8>) -> OutputPiece? {
        guard let header = parseHeader(frame) else { return nil }
        return OutputPiece(
            attempt: header.attempt, stream: header.stream, offset: header.offset,
            bytes: Array(frame.dropFirst(headerSize)))
    }
}

/// A binary frame of input from the hub to a worker: a tag byte, the attempt token (big-endian),
/// then the bytes for its stdin or terminal. Sent only to a worker whose hello says it takes them
/// (`WorkerHello.inputFrames`), so a keystroke costs neither base64 nor JSON on either side.
public enum InputFrame {
    /// The first byte; distinct from every `OutputStreamKind`, so a frame sent the wrong way is
    /// refused as malformed rather than taken for output.
    public static let tag: UInt8 = 0x10
    public static let headerSize = 9

    public static func encode(attempt: AttemptToken, bytes: [UInt8]) -> [UInt8] {
        var frame: [UInt8] = [tag]
        frame.reserveCapacity(headerSize + bytes.count)
        for shift in stride(from: 56, through: 0, by: -8) {
            frame.append(UInt8(truncatingIfNeeded: attempt.rawValue >> UInt64(shift)))
        }
        return frame + bytes
    }

    /// The attempt and its bytes; nil when the frame is too short or not an input frame.
    public static func decode(_ frame: some Collection<UInt8>) -> (attempt: AttemptToken, bytes: [UInt8])? {
        guard frame.count >= headerSize, frame.first == tag else { return nil }
        var attempt: UInt64 = 0
        for byte in frame.dropFirst().prefix(8) { attempt = attempt << 8 | UInt64(byte) }
        return (AttemptToken(attempt), Array(frame.dropFirst(headerSize)))
    }
}
