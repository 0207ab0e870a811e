import Foundation
import GRDB
public import XNProtocol

/// Output: bytes in `OutputFiles`, each stream's recorded size in the job's row. A write puts
/// the bytes in the file first and records the size after, so what the row says is always there.
extension SQLiteJobStore {
    public func appendOutput(
        _ id: JobID, stream: OutputStreamKind, offset: Int, bytes: ArraySlice<UInt8>
    ) async throws {
        try bytes.withUnsafeBytes { try outputFiles.write(id, stream, offset: offset, bytes: $0) }
        let column = Self.sizeColumn(stream)
        let recorded = try await commits.write { db in
            try db.cachedStatement(sql: "UPDATE jobs SET \(column) = max(\(column), ?) WHERE id = ?")
                .execute(arguments: [offset + bytes.count, id.rawValue])
            return db.changesCount == 1
        }
        // No such job (purged meanwhile): its bytes must not outlive it.
        if !recorded { outputFiles.remove(id) }
    }

    public func output(_ id: JobID, stream: OutputStreamKind, from offset: Int, limit: Int) async throws -> [UInt8] {
        let column = Self.sizeColumn(stream)
        let recorded = try readOneStatement { db in
            try Int.fetchOne(
                db.cachedStatement(sql: "SELECT \(column) FROM jobs WHERE id = ?"), arguments: [id.rawValue])
        }
        guard let recorded, offset >= 0, offset < recorded, limit > 0 else { return [] }
        return try outputFiles.read(id, stream, from: offset, count: min(limit, recorded - offset))
    }

    static func sizeColumn(_ stream: OutputStreamKind) -> String {
        stream == .stdout ? "stdout_bytes" : "stderr_bytes"
    }

    /// Cuts back what a crash left beyond the recorded sizes: only a job that had not ended can
    /// have been written to then (a queued one, when the crash came between a retry being
    /// recorded and the last attempt's files being deleted).
    func trimUnrecordedOutput() throws {
        let rows = try db.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, stdout_bytes, stderr_bytes FROM jobs WHERE state IN ('queued', 'assigned', 'running')
                    """)
        }
        for row in rows {
            guard let id = JobID(row[0] as String) else { continue }
            try outputFiles.trim(id, .stdout, to: row[1])
            try outputFiles.trim(id, .stderr, to: row[2])
        }
    }

    /// Output stored in SQLite by earlier versions moves to files, once. A crash before the
    /// migration commits leaves the table in place, and the next start writes the same bytes again.
    static func migrateOutputToFiles(_ migrator: inout DatabaseMigrator, files: OutputFiles) {
        migrator.registerMigration("v9: output in files") { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT j.id, o.stream, o.offset, o.data FROM output o JOIN jobs j ON j.seq = o.job_seq")
            while let row = try rows.next() {
                guard let id = JobID(row[0] as String), let stream = OutputStreamKind(rawValue: row[1]) else {
                    continue
                }
                let data: Data = row[3]
                try data.withUnsafeBytes { try files.write(id, stream, offset: row[2], bytes: $0) }
            }
            try db.execute(sql: "DROP TABLE output")
        }
    }
}
