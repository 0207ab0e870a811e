import Foundation
import GRDB
import Synchronization
public import XNProtocol

/// The default store: SQLite in WAL mode through GRDB, one file under the data folder.
public final class SQLiteJobStore: JobStore {
    let db: any DatabaseWriter
    /// Every write of jobs and their output goes through it, sharing transactions under load.
    let commits: GroupCommit
    /// Where output lives: beside the database in `output/`, or a private temporary folder.
    let outputFiles: OutputFiles
    /// The specs of jobs stored as assigned or running, so the record an end returns needs no
    /// JSON decoding (a spec never changes). Bounded by the jobs running; a job missing here
    /// (claimed before a restart) is decoded as before.
    private let runningSpecs = Mutex<[JobID: JobSpec]>([:])

    /// Opens (creating and migrating as needed) `path`; `nil` gives a private in-memory database.
    public init(path: String?) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        if let path {
            try Self.restrictToOwner(path)
            db = try DatabasePool(path: path, configuration: config)
            let folder = (path as NSString).deletingLastPathComponent
            outputFiles = try OutputFiles(folder: folder.isEmpty ? "output" : folder + "/output")
        } else {
            db = try DatabaseQueue(configuration: config)
            outputFiles = try OutputFiles()
        }
        var migrator = Self.migrator
        Self.migrateOutputToFiles(&migrator, files: outputFiles)
        try migrator.migrate(db)
        commits = GroupCommit(db)
        try trimUnrecordedOutput()
    }

    /// Reads on the caller's thread. GRDB's synchronous read borrows a reader connection and
    /// runs there; its asynchronous one hands the read to that connection's queue and the result
    /// back, two thread wake-ups that cost more than a lookup by id itself.
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try db.read(body)
    }

    /// Reads on a reader connection's own queue, for a read that may take long (a filtered list
    /// scanning every job): the caller's thread, an event loop serving other connections too,
    /// stays free meanwhile.
    func readAside<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await db.read(body)
    }

    /// A read of one statement, without the transaction GRDB's read wraps around its closure
    /// (a BEGIN and a COMMIT): SQLite reads a single statement from one snapshot anyway.
    func readOneStatement<T>(_ body: (Database) throws -> T) throws -> T {
        try db.unsafeRead(body)
    }

    /// The database holds every job's output and the attach transcripts: only its owner may
    /// read it, whatever the umask. SQLite gives its -wal and -shm files the mode of the database
    /// file, so creating that one 0600 (and tightening files an older version left) covers all three.
    static func restrictToOwner(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("cannot open \(path): \(String(cString: strerror(errno)))") }
        close(fd)
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            guard chmod(file, 0o600) == 0 else {
                throw StoreError("cannot make \(file) readable by its owner only: \(String(cString: strerror(errno)))")
            }
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE jobs (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        id TEXT NOT NULL UNIQUE,
                        spec BLOB NOT NULL,
                        state TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        started_at INTEGER,
                        finished_at INTEGER,
                        exit_code INTEGER,
                        signal INTEGER,
                        err TEXT,
                        stdout_bytes INTEGER NOT NULL DEFAULT 0,
                        stderr_bytes INTEGER NOT NULL DEFAULT 0,
                        stdout_truncated INTEGER NOT NULL DEFAULT 0,
                        stderr_truncated INTEGER NOT NULL DEFAULT 0,
                        callback_status TEXT,
                        worker TEXT
                    );
                    CREATE INDEX jobs_state_seq ON jobs(state, seq);
                    CREATE TABLE output (
                        job_seq INTEGER NOT NULL,
                        stream INTEGER NOT NULL,
                        offset INTEGER NOT NULL,
                        data BLOB NOT NULL,
                        PRIMARY KEY (job_seq, stream, offset)
                    );
                    """)
        }
        migrator.registerMigration("v2: attempts and fencing tokens") { db in
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN attempt_token TEXT")
        }
        migrator.registerMigration("v3: tokens and job owners") { db in
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN owner TEXT")
            try db.execute(
                sql: """
                    CREATE TABLE tokens (
                        name TEXT PRIMARY KEY,
                        role TEXT NOT NULL,
                        hash TEXT NOT NULL UNIQUE,
                        allow TEXT,
                        labels TEXT,
                        max_queued INTEGER,
                        created_at INTEGER NOT NULL,
                        revoked_at INTEGER
                    )
                    """)
        }
        migrateTranscripts(&migrator)
        migrator.registerMigration("v5: worker token slots") { db in
            try db.execute(sql: "ALTER TABLE tokens ADD COLUMN slots INTEGER")
        }
        migrator.registerMigration("v6: callback delivery log") { db in
            for column in [
                "callback_state TEXT", "callback_attempts INTEGER NOT NULL DEFAULT 0", "callback_result TEXT",
                "callback_last_at INTEGER", "callback_next_at INTEGER",
            ] {
                try db.execute(sql: "ALTER TABLE jobs ADD COLUMN \(column)")
            }
            // Jobs with a callback: what their status says, else still to deliver (a hub that
            // stopped before delivering it now does).
            try db.execute(
                sql: """
                    UPDATE jobs SET callback_result = callback_status,
                        callback_state = CASE WHEN callback_status LIKE 'delivered%' THEN 'delivered'
                            WHEN callback_status LIKE 'failed%' THEN 'failed' ELSE 'pending' END
                    WHERE json_extract(CAST(spec AS TEXT), '$.callback') IS NOT NULL
                    """)
            try db.execute(sql: "CREATE INDEX jobs_callback_pending ON jobs(seq) WHERE callback_state = 'pending'")
        }
        migrator.registerMigration("v7: resource usage") { db in
            for column in ["cpu_user_seconds REAL", "cpu_system_seconds REAL", "peak_memory_bytes INTEGER"] {
                try db.execute(sql: "ALTER TABLE jobs ADD COLUMN \(column)")
            }
        }
        migrator.registerMigration("v8: isolating tokens") { db in
            try db.execute(sql: "ALTER TABLE tokens ADD COLUMN isolate INTEGER NOT NULL DEFAULT 0")
            try db.execute(sql: "ALTER TABLE tokens ADD COLUMN allow_network INTEGER NOT NULL DEFAULT 0")
        }
        return migrator
    }

    public func insert(_ job: JobRecord) async throws -> JobRecord {
        guard job.state.isInitial else { throw StoreError("a new job cannot be stored as \(job.state.rawValue)") }
        let spec = try job.spec.storedJSON()
        let stored = try await commits.write { db in
            try db.cachedStatement(
                sql: """
                    INSERT INTO jobs (id, spec, state, created_at, started_at, worker, attempts, attempt_token, owner,
                        callback_state)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                job.id.rawValue, spec, job.state.rawValue, job.createdAt, job.startedAt, job.worker, job.attempts,
                job.attemptToken?.description, job.owner, job.spec.callback == nil ? nil : "pending",
            ])
            var stored = job
            stored.seq = db.lastInsertedRowID
            if job.spec.callback != nil { stored.callbackDelivery = CallbackDelivery() }
            return stored
        }
        if stored.state != .queued { runningSpecs.withLock { $0[stored.id] = stored.spec } }
        return stored
    }

    /// Stores many jobs in one transaction, each with the state and outcome it carries (imports,
    /// benchmarks). Returns them with `seq` set.
    public func insertBatch(_ jobs: [JobRecord]) async throws -> [JobRecord] {
        let specs = try jobs.map { try $0.spec.storedJSON() }
        return try await commits.write { db in
            let statement = try db.makeStatement(
                sql: """
                    INSERT INTO jobs (id, spec, state, created_at, started_at, finished_at, exit_code, signal, err, worker)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
            var stored = jobs
            for index in jobs.indices {
                let job = jobs[index]
                try statement.execute(arguments: [
                    job.id.rawValue, specs[index], job.state.rawValue, job.createdAt, job.startedAt, job.finishedAt,
                    job.exitCode, job.signal, job.err, job.worker,
                ])
                stored[index].seq = db.lastInsertedRowID
            }
            return stored
        }
    }

    public func job(_ id: JobID) async throws -> JobRecord? {
        try readOneStatement { db in
            try Row.fetchCursor(
                db.cachedStatement(sql: "SELECT \(Self.columns) FROM jobs WHERE id = ?"), arguments: [id.rawValue]
            )
            .first { try Self.record($0) }
        }
    }

    public func queued(limit: Int) async throws -> [QueuedJob] {
        try read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT seq, id, spec, owner, created_at FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT ?"
                ),
                arguments: [limit]
            ).map { row in
                let idText: String = row["id"]
                guard let id = JobID(idText) else { throw StoreError("corrupt job id \(idText)") }
                let spec = try JobSpec.decodeStored(row["spec"] as Data)
                return QueuedJob(
                    id: id, seq: row["seq"], labels: spec.labels, owner: row["owner"],
                    keepsInputOpen: spec.keepsInputOpen, hasTerminal: spec.tty != nil, createdAt: row["created_at"])
            }
        }
    }

    public func queueCounts() async throws -> QueueCounts {
        try read { db in
            var counts = QueueCounts()
            let rows = try Row.fetchAll(
                db, sql: "SELECT owner, count(*) FROM jobs WHERE state = 'queued' GROUP BY owner")
            for row in rows {
                let count: Int = row[1]
                counts.total += count
                if let owner: String = row[0] { counts.byOwner[owner] = count }
            }
            return counts
        }
    }

    public func claim(
        _ id: JobID, worker: String, token: AttemptToken, state: JobState, at time: Int64
    ) async throws -> JobRecord? {
        guard JobState.queued.canMove(to: state), !state.isTerminal else {
            throw StoreError("a claim moves a job to assigned or running, not \(state.rawValue)")
        }
        let row = try await commits.write { db in
            try Row.fetchCursor(
                db.cachedStatement(
                    sql: """
                        UPDATE jobs SET state = ?, started_at = ?, worker = ?, attempts = attempts + 1, attempt_token = ?
                        WHERE id = ? AND state = 'queued' RETURNING \(Self.columns)
                        """),
                arguments: [state.rawValue, time, worker, token.description, id.rawValue]
            ).first(Self.values)
        }
        guard let row else { return nil }
        let record = try Self.record(row)
        runningSpecs.withLock { $0[id] = record.spec }
        return record
    }

    public func markStarted(_ id: JobID, token: AttemptToken) async throws -> Bool {
        try await commits.write { db in
            try db.cachedStatement(
                sql: "UPDATE jobs SET state = 'running' WHERE id = ? AND attempt_token = ? AND state = 'assigned'"
            ).execute(arguments: [id.rawValue, token.description])
            return db.changesCount == 1
        }
    }

    public func requeue(_ id: JobID, token: AttemptToken, reason: String) async throws -> Bool {
        let requeued = try await commits.write { db in
            try db.cachedStatement(
                sql: """
                    UPDATE jobs SET state = 'queued', err = ?, worker = NULL, started_at = NULL, attempt_token = NULL,
                        stdout_bytes = 0, stderr_bytes = 0
                    WHERE id = ? AND attempt_token = ? AND state IN (\(Self.sqlList(JobState.queued.sources)))
                    """
            ).execute(arguments: [reason, id.rawValue, token.description])
            return db.changesCount == 1
        }
        // The next attempt writes its output from the start.
        if requeued {
            runningSpecs.withLock { _ = $0.removeValue(forKey: id) }
            outputFiles.remove(id)
        }
        return requeued
    }

    public func activeJobs() async throws -> [JobRecord] {
        try read { db in
            try Self.records(
                Row.fetchCursor(
                    db, sql: "SELECT \(Self.columns) FROM jobs WHERE state IN ('assigned', 'running') ORDER BY seq"))
        }
    }

    public func finish(_ id: JobID, _ outcome: JobOutcome, token: AttemptToken?) async throws -> JobRecord? {
        let fence = token?.description
        let sources = Self.sqlList(outcome.state.sources)
        // The row comes back from the update itself and is decoded after the commit, off the one
        // writer every write waits for.
        let row = try await commits.write { db in
            try Row.fetchCursor(
                db.cachedStatement(
                    sql: """
                        UPDATE jobs SET state = ?, exit_code = ?, signal = ?, err = ?, finished_at = ?,
                            stdout_truncated = ?, stderr_truncated = ?, cpu_user_seconds = ?, cpu_system_seconds = ?,
                            peak_memory_bytes = ?
                        WHERE id = ? AND state IN (\(sources)) AND (? IS NULL OR attempt_token = ?)
                        RETURNING \(Self.columns)
                        """),
                arguments: [
                    outcome.state.rawValue, outcome.exitCode, outcome.signal, outcome.err, outcome.finishedAt,
                    outcome.stdoutTruncated, outcome.stderrTruncated, outcome.usage?.cpuUserSeconds,
                    outcome.usage?.cpuSystemSeconds, outcome.usage?.peakMemoryBytes, id.rawValue, fence, fence,
                ]
            ).first(Self.values)
        }
        guard let row else { return nil }
        let spec = runningSpecs.withLock { $0.removeValue(forKey: id) }
        return try Self.record(row, spec: spec)
    }

    /// States as a SQL list of literals (they are fixed identifiers, never user input).
    private static func sqlList(_ states: [JobState]) -> String {
        states.isEmpty ? "NULL" : states.map { "'\($0.rawValue)'" }.joined(separator: ", ")
    }

    public func purgeFinished(keeping: Int) async throws -> Int {
        let purged = try await commits.write { db -> [String] in
            let finished = "state NOT IN ('queued', 'assigned', 'running')"
            let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM jobs WHERE \(finished)") ?? 0
            guard total > keeping else { return [] }
            let victims = try String.fetchAll(
                db.cachedStatement(sql: "SELECT id FROM jobs WHERE \(finished) ORDER BY seq LIMIT ?"),
                arguments: [total - keeping])
            for id in victims {
                try db.cachedStatement(sql: "DELETE FROM jobs WHERE id = ?").execute(arguments: [id])
            }
            return victims
        }
        // After the commit: a crash in between leaves files of no job, never a job without its files.
        for id in purged.compactMap(JobID.init) { outputFiles.remove(id) }
        return purged.count
    }

    public func count(state: JobState?) async throws -> Int {
        try read { db in
            if let state {
                return try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT count(*) FROM jobs WHERE state = ?"), arguments: [state.rawValue])
                    ?? 0
            }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM jobs") ?? 0
        }
    }
}

/// A store that cannot make sense of what it holds.
public struct StoreError: Error, CustomStringConvertible {
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}
