import Foundation
import XNProtocol
import XNStore

/// Each store implementation the conformance suite runs against.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqliteMemory = "SQLite in memory"
    case sqliteFile = "SQLite file"

    var description: String { rawValue }

    /// Whether a store opened again at the same place sees what the last one wrote.
    var persists: Bool { self == .sqliteFile }

    /// Opens the store kept in `directory` (ignored by in-memory stores).
    func open(in directory: String) throws -> any JobStore {
        switch self {
        case .sqliteMemory: try SQLiteJobStore(path: nil)
        case .sqliteFile: try SQLiteJobStore(path: directory + "/jobs.sqlite")
        }
    }
}

/// Runs `body` with a fresh store of `kind` in its own temporary directory, removed afterwards.
func withStore<R>(
    _ kind: StoreKind, _ body: (any JobStore, _ directory: String) async throws -> R
) async throws -> R {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    return try await body(try kind.open(in: directory), directory)
}

func makeTemporaryDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "/xn-store-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
    return String(cString: made)
}

/// The same deterministic bytes as `xn-testtask bytes COUNT SEED`.
func generatedBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: state >> 33)
    }
}
