import Foundation
import GRDB
public import XNProtocol

/// One thing that happened in an attach session that could type: output shown, input typed,
/// a resize, or a control (a signal, closing stdin).
public struct TranscriptEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// Output sent to the client.
        case output = "o"
        /// Bytes the client typed.
        case input = "i"
        /// The terminal's new size, `COLSxROWS`.
        case resize = "r"
        /// A control, as a label ("signal INT").
        case marker = "m"
    }

    /// Milliseconds since the session began.
    public var at: Int64
    public var kind: Kind
    public var data: [UInt8]

    public init(at: Int64, kind: Kind, data: [UInt8]) {
        self.at = at
        self.kind = kind
        self.data = data
    }
}

/// A recorded session: who attached, from where, when.
public struct TranscriptInfo: Sendable, Equatable, Codable {
    public var session: Int64
    public var job: String
    /// The token's name; nil on a hub without tokens.
    public var token: String?
    public var peer: String
    public var startedAt: Int64
    public var endedAt: Int64?
    /// The job's terminal size when the session began.
    public var rows: Int
    public var cols: Int
    public var events: Int

    public init(
        session: Int64, job: String, token: String?, peer: String, startedAt: Int64, endedAt: Int64?, rows: Int,
        cols: Int, events: Int
    ) {
        self.session = session
        self.job = job
        self.token = token
        self.peer = peer
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.rows = rows
        self.cols = cols
        self.events = events
    }
}

/// Where transcripts of attach sessions with write access are kept (the audit trail of who
/// typed what into which job). They outlive their job's purge.
public protocol TranscriptStore: Sendable {
    /// Starts a transcript and returns its session number.
    func startTranscript(
        job: JobID, token: String?, peer: String, at: Int64, rows: Int, cols: Int
    ) async throws
        -> Int64
    func appendTranscript(_ session: Int64, _ events: [TranscriptEvent]) async throws
    func endTranscript(_ session: Int64, at: Int64) async throws
    /// The job's transcripts, oldest first.
    func transcripts(of job: JobID) async throws -> [TranscriptInfo]
    func transcript(_ session: Int64) async throws -> (TranscriptInfo, [TranscriptEvent])?
}

extension SQLiteJobStore: TranscriptStore {
    static func migrateTranscripts(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v4: transcripts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE transcripts (
                        session INTEGER PRIMARY KEY AUTOINCREMENT,
                        job TEXT NOT NULL,
                        token TEXT,
                        peer TEXT NOT NULL,
                        started_at INTEGER NOT NULL,
                        ended_at INTEGER,
                        rows INTEGER NOT NULL,
                        cols INTEGER NOT NULL
                    );
                    CREATE INDEX transcripts_job ON transcripts(job);
                    CREATE TABLE transcript_events (
                        session INTEGER NOT NULL,
                        seq INTEGER NOT NULL,
                        at INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        data BLOB NOT NULL,
                        PRIMARY KEY (session, seq)
                    );
                    """)
        }
    }

    public func startTranscript(
        job: JobID, token: String?, peer: String, at: Int64, rows: Int, cols: Int
    ) async throws -> Int64 {
        try await commits.write { db in
            try db.execute(
                sql: "INSERT INTO transcripts (job, token, peer, started_at, rows, cols) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [job.rawValue, token, peer, at, rows, cols])
            return db.lastInsertedRowID
        }
    }

    public func appendTranscript(_ session: Int64, _ events: [TranscriptEvent]) async throws {
        guard !events.isEmpty else { return }
        try await commits.write { db in
            let next =
                try Int64.fetchOne(
                    db, sql: "SELECT coalesce(max(seq), 0) FROM transcript_events WHERE session = ?",
                    arguments: [session]) ?? 0
            let statement = try db.cachedStatement(
                sql: "INSERT INTO transcript_events (session, seq, at, kind, data) VALUES (?, ?, ?, ?, ?)")
            for (index, event) in events.enumerated() {
                try statement.execute(arguments: [
                    session, next + Int64(index) + 1, event.at, event.kind.rawValue, Data(event.data),
                ])
            }
        }
    }

    public func endTranscript(_ session: Int64, at: Int64) async throws {
        try await commits.write { db in
            try db.execute(sql: "UPDATE transcripts SET ended_at = ? WHERE session = ?", arguments: [at, session])
        }
    }

    public func transcripts(of job: JobID) async throws -> [TranscriptInfo] {
        try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT t.*, (SELECT count(*) FROM transcript_events e WHERE e.session = t.session) AS events
                    FROM transcripts t WHERE job = ? ORDER BY session
                    """, arguments: [job.rawValue]
            ).map(Self.transcriptInfo)
        }
    }

    public func transcript(_ session: Int64) async throws -> (TranscriptInfo, [TranscriptEvent])? {
        try read { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT t.*, (SELECT count(*) FROM transcript_events e WHERE e.session = t.session) AS events
                        FROM transcripts t WHERE session = ?
                        """, arguments: [session])
            else { return nil }
            let events = try Row.fetchAll(
                db, sql: "SELECT at, kind, data FROM transcript_events WHERE session = ? ORDER BY seq",
                arguments: [session]
            ).compactMap { row -> TranscriptEvent? in
                guard let kind = TranscriptEvent.Kind(rawValue: row["kind"]) else { return nil }
                let data: Data = row["data"]
                return TranscriptEvent(at: row["at"], kind: kind, data: [UInt8](data))
            }
            return (Self.transcriptInfo(row), events)
        }
    }

    private static func transcriptInfo(_ row: Row) -> TranscriptInfo {
        TranscriptInfo(
            session: row["session"], job: row["job"], token: row["token"], peer: row["peer"],
            startedAt: row["started_at"], endedAt: row["ended_at"], rows: row["rows"], cols: row["cols"],
            events: row["events"])
    }
}
