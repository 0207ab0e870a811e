import Testing

@testable import XNWorker

/// What a worker holds of a stream the hub has not stored: every byte from the hub's last ack on,
/// in memory or in the spool, and where each byte is.
struct HeldOutputTests {
    /// The bytes a piece from memory carries, joined.
    func bytes(_ piece: HeldOutput.Piece?) -> [UInt8]? {
        guard case .memory(let slices)? = piece else { return nil }
        return slices.flatMap { $0 }
    }

    @Test func piecesFromMemorySpanChunksAndStopAtTheCount() {
        var held = HeldOutput()
        held.append([1, 2, 3])
        held.append([4, 5])
        held.append([6, 7, 8, 9])
        #expect(held.written == 9)
        #expect(held.memoryBytes == 9)
        #expect(bytes(held.piece(from: 0, count: 100)) == [1, 2, 3, 4, 5, 6, 7, 8, 9])
        #expect(bytes(held.piece(from: 2, count: 4)) == [3, 4, 5, 6])
        #expect(bytes(held.piece(from: 5, count: 1)) == [6])
        #expect(held.piece(from: 9, count: 10) == nil)
    }

    @Test func anAckLetsGoOfWholeChunksBelowItAndNothingBelowItIsOfferedAgain() {
        var held = HeldOutput()
        held.append([1, 2, 3])
        held.append([4, 5, 6])
        // Half of the second chunk is acknowledged: it stays whole, and is still offered.
        #expect(held.acknowledge(upTo: 4) == 3)
        #expect(held.memoryBytes == 3)
        #expect(held.heldFrom == 3)
        #expect(held.piece(from: 2, count: 10) == nil)
        #expect(bytes(held.piece(from: 4, count: 10)) == [5, 6])
        // An older ack (a hub that restarted) moves nothing back.
        #expect(held.acknowledge(upTo: 1) == 0)
        #expect(held.acked == 4)
        #expect(held.acknowledge(upTo: 6) == 3)
        #expect(held.memoryBytes == 0)
        #expect(held.heldFrom == 6)
    }

    @Test func spilledBytesAreReadFromTheSpoolAndNewerOnesFromMemory() {
        var held = HeldOutput()
        held.append([1, 2, 3])
        held.append([4, 5])
        let spill = held.beginSpill()
        #expect(spill?.offset == 0)
        #expect(spill?.chunks == [[1, 2, 3], [4, 5]])
        // One spill at a time; bytes that come meanwhile stay in memory after it.
        #expect(held.beginSpill() == nil)
        held.append([6, 7])
        #expect(held.spilled(upTo: 5) == 5)
        #expect(held.memoryBytes == 2)
        #expect(held.memoryStart == 5)
        guard case .spool(let count)? = held.piece(from: 1, count: 100) else {
            Issue.record("bytes below memory must come from the spool")
            return
        }
        #expect(count == 4)
        #expect(bytes(held.piece(from: 5, count: 100)) == [6, 7])
        // Spilled bytes stay readable until the hub acknowledges them.
        #expect(held.heldFrom == 0)
        #expect(held.acknowledge(upTo: 7) == 2)
        #expect(held.piece(from: 3, count: 1) == nil)
    }

    @Test func aFailedSpillKeepsItsBytesInMemory() {
        var held = HeldOutput()
        held.append([1, 2, 3])
        _ = held.beginSpill()
        held.spillFailed()
        #expect(held.memoryBytes == 3)
        #expect(bytes(held.piece(from: 0, count: 3)) == [1, 2, 3])
        #expect(held.beginSpill()?.offset == 0)
    }
}
