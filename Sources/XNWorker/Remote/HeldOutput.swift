import NIOCore

/// One stream of one attempt's output that the hub has not stored yet: the newest bytes in memory,
/// older ones in the spool file once they had to leave memory (the hub away, or not keeping up).
///
///     0 ─── heldFrom ─── (spool) ─── memoryStart ─── (memory) ─── written
///
/// Every byte from `heldFrom` on is held, in the spool below `memoryStart` and in memory from it.
/// Bytes the hub acknowledged leave memory without being spooled: the hub recorded them before
/// it acknowledged them, so only a hub that lost what it had committed asks for them again.
struct HeldOutput {
    /// Bytes the runner reported.
    private(set) var written = 0
    /// Bytes the hub acknowledged, the most it ever said.
    private(set) var acked = 0
    /// The lowest offset still held; below it, bytes went when the hub acknowledged them.
    private(set) var heldFrom = 0
    /// Bytes in memory, oldest first, contiguous up to `written`.
    private var chunks = CircularBuffer<Chunk>()
    /// Bytes in memory.
    private(set) var memoryBytes = 0
    /// True while bytes are on their way to the spool.
    private(set) var spilling = false

    struct Chunk {
        let offset: Int
        let bytes: [UInt8]
        var end: Int { offset + bytes.count }
    }

    /// Where memory begins; below it (down to `heldFrom`) the bytes are in the spool.
    var memoryStart: Int { chunks.first?.offset ?? written }

    /// The runner's next bytes.
    mutating func append(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        chunks.append(Chunk(offset: written, bytes: bytes))
        written += bytes.count
        memoryBytes += bytes.count
    }

    /// The hub stored everything below `offset`: memory holding only such bytes is let go.
    /// Returns how many bytes of memory that freed.
    mutating func acknowledge(upTo offset: Int) -> Int {
        acked = max(acked, min(offset, written))
        var freed = 0
        while let first = chunks.first, first.end <= acked {
            chunks.removeFirst()
            memoryBytes -= first.bytes.count
            freed += first.bytes.count
            heldFrom = max(heldFrom, first.end)
        }
        return freed
    }

    /// The bytes in memory to write to the spool at `offset`, or nil when there are none or a
    /// spill is already under way; `spilled(upTo:)` lets them go once written.
    mutating func beginSpill() -> (offset: Int, chunks: [[UInt8]])? {
        guard !spilling, let first = chunks.first else { return nil }
        spilling = true
        return (first.offset, chunks.map(\.bytes))
    }

    /// The spill from `beginSpill` was written, up to `offset`: those bytes leave memory.
    /// Returns how many bytes of memory that freed.
    mutating func spilled(upTo offset: Int) -> Int {
        spilling = false
        var freed = 0
        while let first = chunks.first, first.end <= offset {
            chunks.removeFirst()
            memoryBytes -= first.bytes.count
            freed += first.bytes.count
        }
        return freed
    }

    /// The spill failed: its bytes stay in memory.
    mutating func spillFailed() {
        spilling = false
    }

    /// Where up to `count` bytes from `offset` are: in memory (the slices, in order) or in the
    /// spool (how many to read there). Nil when `offset` is below what is held or at the end.
    func piece(from offset: Int, count: Int) -> Piece? {
        guard offset >= heldFrom, offset < written, count > 0 else { return nil }
        let start = memoryStart
        if offset < start { return .spool(count: min(count, start - offset)) }
        var slices: [ArraySlice<UInt8>] = []
        var next = offset
        let end = min(offset + count, written)
        for chunk in chunks where chunk.end > next {
            guard next < end else { break }
            let from = next - chunk.offset
            let to = min(chunk.bytes.count, end - chunk.offset)
            slices.append(chunk.bytes[from..<to])
            next = chunk.offset + to
        }
        return .memory(slices)
    }

    enum Piece: Equatable {
        case memory([ArraySlice<UInt8>])
        case spool(count: Int)
    }
}
