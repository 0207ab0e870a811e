import Foundation
import GRDB
import XNProtocol

/// How a job row becomes a `JobRecord`: by column position, decoded where its statement stands.
extension SQLiteJobStore {
    /// Every column of a job, in the order `record` reads them (by position).
    static let columns = """
        seq, id, spec, state, created_at, started_at, finished_at, exit_code, signal, err,
        stdout_bytes, stderr_bytes, stdout_truncated, stderr_truncated, callback_status, worker,
        attempts, attempt_token, owner, callback_state, callback_attempts, callback_result, callback_last_at,
        callback_next_at, cpu_user_seconds, cpu_system_seconds, peak_memory_bytes
        """
    static let columnCount = columns.split(separator: ",").count

    /// Every job a cursor over rows of `columns` yields, each decoded where it stands (no row is
    /// copied, column names and all, as `fetchAll` does).
    static func records(_ cursor: RowCursor) throws -> [JobRecord] {
        var records: [JobRecord] = []
        while let row = try cursor.next() { records.append(try record(row)) }
        return records
    }

    /// The values of a row of `columns`, copied so they can leave the writer's queue (a row cannot).
    static func values(_ row: Row) -> [DatabaseValue] {
        (0..<row.count).map { row[$0] as DatabaseValue }
    }

    /// A job from a row of `columns` (or its values), read by position: a lookup by name compares
    /// every column's name, case-insensitively. `spec`, when the caller has it, spares decoding
    /// its JSON.
    static func record(_ row: some JobColumns, spec known: JobSpec? = nil) throws -> JobRecord {
        guard row.columnCount == columnCount else { throw StoreError("a job row has \(row.columnCount) columns") }
        func value<T: DatabaseValueConvertible & StatementColumnConvertible>(_ column: Int) -> T? {
            row.value(column)
        }
        guard let idText: String = value(1), let id = JobID(idText) else {
            throw StoreError("corrupt job id \(row.value(1) as String? ?? "(none)")")
        }
        guard let seq: Int64 = value(0), let createdAt: Int64 = value(4) else {
            throw StoreError("job \(id) has no submission order or time")
        }
        guard let stateText: String = value(3), let state = JobState(rawValue: stateText) else {
            throw StoreError("corrupt job state \(row.value(3) as String? ?? "(none)")")
        }
        let spec: JobSpec
        if let known {
            spec = known
        } else {
            guard let data: Data = value(2) else { throw StoreError("job \(id) has no spec") }
            spec = try JobSpec.decodeStored(data)
        }
        var record = JobRecord(id: id, spec: spec, createdAt: createdAt)
        record.seq = seq
        record.state = state
        record.startedAt = value(5)
        record.finishedAt = value(6)
        record.exitCode = value(7)
        record.signal = value(8)
        record.err = value(9)
        record.stdoutBytes = value(10) ?? 0
        record.stderrBytes = value(11) ?? 0
        record.stdoutTruncated = value(12) ?? false
        record.stderrTruncated = value(13) ?? false
        record.callbackStatus = value(14)
        record.worker = value(15)
        record.attempts = value(16) ?? 0
        record.attemptToken = (value(17) as String?).flatMap { AttemptToken(hex: $0) }
        record.owner = value(18)
        if let text: String = value(19), let state = CallbackDelivery.State(rawValue: text) {
            record.callbackDelivery = CallbackDelivery(
                state: state, attempts: value(20) ?? 0, lastResult: value(21), lastAttemptAt: value(22),
                nextAttemptAt: value(23))
        }
        if let user: Double = value(24), let system: Double = value(25) {
            record.usage = JobUsage(cpuUserSeconds: user, cpuSystemSeconds: system, peakMemoryBytes: value(26))
        }
        return record
    }
}

extension RowCursor {
    /// `transform` of the first row, while the cursor (which the row reads from) is still open.
    func first<T>(_ transform: (Row) throws -> T) throws -> T? {
        try next().map(transform)
    }
}

/// Where `SQLiteJobStore.record` reads a job's columns, by position: a row still on its statement
/// (reads), or values copied out of one inside a write.
protocol JobColumns {
    var columnCount: Int { get }
    func value<T: DatabaseValueConvertible & StatementColumnConvertible>(_ column: Int) -> T?
}

extension Row: JobColumns {
    var columnCount: Int { count }
    func value<T: DatabaseValueConvertible & StatementColumnConvertible>(_ column: Int) -> T? { self[column] }
}

extension [DatabaseValue]: JobColumns {
    var columnCount: Int { count }
    func value<T: DatabaseValueConvertible & StatementColumnConvertible>(_ column: Int) -> T? {
        T.fromDatabaseValue(self[column])
    }
}
