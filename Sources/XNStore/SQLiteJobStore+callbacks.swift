import GRDB
public import XNProtocol

/// Callback deliveries: kept with their job from submission until delivered or given up.
extension SQLiteJobStore {
    public func recordCallback(_ id: JobID, _ delivery: CallbackDelivery, status: String?) async throws {
        try await commits.write { db in
            try db.cachedStatement(
                sql: """
                    UPDATE jobs SET callback_status = ?, callback_state = ?, callback_attempts = ?, callback_result = ?,
                        callback_last_at = ?, callback_next_at = ?
                    WHERE id = ?
                    """
            ).execute(arguments: [
                status, delivery.state.rawValue, delivery.attempts, delivery.lastResult, delivery.lastAttemptAt,
                delivery.nextAttemptAt, id.rawValue,
            ])
        }
    }

    public func pendingCallbacks() async throws -> [JobRecord] {
        let ended = JobState.allCases.filter(\.isTerminal).map { "'\($0.rawValue)'" }.joined(separator: ", ")
        return try read { db in
            try Self.records(
                Row.fetchCursor(
                    db,
                    sql: """
                        SELECT \(Self.columns) FROM jobs WHERE callback_state = 'pending' AND state IN (\(ended))
                        ORDER BY seq
                        """
                ))
        }
    }
}
