import Foundation
import GRDB
public import XNProtocol

/// Listing jobs: newest first, by cursor, through the filters a job list offers.
extension SQLiteJobStore {
    public func list(_ filter: JobFilter, before: Int64?, limit: Int) async throws -> [JobRecord] {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        if let states = filter.states, !states.isEmpty {
            clauses.append("state IN (\(states.map { _ in "?" }.joined(separator: ",")))")
            for state in states { arguments += [state.rawValue] }
        }
        if let owner = filter.owner {
            clauses.append("owner = ?")
            arguments += [owner]
        }
        // The spec is JSON stored as a blob: read as text for the JSON functions and the search.
        for (key, value) in filter.labels.sorted(by: { $0.key < $1.key }) {
            // json_each rather than a JSON path: a label's name may hold any character.
            clauses.append(
                "EXISTS (SELECT 1 FROM json_each(CAST(jobs.spec AS TEXT), '$.labels') WHERE key = ? AND value = ?)")
            arguments += [key, value]
        }
        if let text = filter.text, !text.isEmpty {
            clauses.append(
                """
                (instr(id, ?) > 0 OR instr(json_extract(CAST(spec AS TEXT), '$.command'), ?) > 0
                 OR instr(COALESCE(json_extract(CAST(spec AS TEXT), '$.args'), ''), ?) > 0
                 OR instr(COALESCE(owner, ''), ?) > 0)
                """)
            arguments += [text, text, text, text]
        }
        // A filter may scan every job (a label, a search); the newest jobs before a cursor never do.
        let mayScan = !clauses.isEmpty
        if let before {
            clauses.append("seq < ?")
            arguments += [before]
        }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        arguments += [limit]
        let sql = "SELECT \(Self.columns) FROM jobs \(whereClause) ORDER BY seq DESC LIMIT ?"
        let bound = arguments
        let fetch: @Sendable (Database) throws -> [JobRecord] = { db in
            try Self.records(Row.fetchCursor(db, sql: sql, arguments: bound))
        }
        return mayScan ? try await readAside(fetch) : try read(fetch)
    }
}
