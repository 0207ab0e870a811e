import Foundation
import GRDB
import Testing
import XNProtocol

@testable import XNStore

/// Output in files: stored once beside the database, trimmed back to what is recorded after a
/// crash, deleted with its job, and moved out of SQLite for a database an older version wrote.
@Suite("Output files")
struct OutputFilesTests {
    func file(_ directory: String, _ id: JobID, _ stream: String) -> String {
        "\(directory)/output/\(id.rawValue.prefix(2))/\(id.rawValue).\(stream)"
    }

    func contents(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { Array($0) }
    }

    @Test("output is one file per stream beside the database, only its owner may read it, and a purge deletes it")
    func filesBesideTheDatabase() async throws {
        try await withStore(.sqliteFile) { store, directory in
            let job = try await store.job(in: .running)
            let first = generatedBytes(count: 300_000, seed: 1)
            try await store.appendOutput(job.id, stream: .stdout, offset: 0, bytes: first)
            try await store.appendOutput(job.id, stream: .stdout, offset: first.count, bytes: Array("end".utf8))
            try await store.appendOutput(job.id, stream: .stderr, offset: 0, bytes: Array("oops".utf8))
            #expect(contents(file(directory, job.id, "stdout")) == first + Array("end".utf8))
            #expect(contents(file(directory, job.id, "stderr")) == Array("oops".utf8))
            let mode =
                try FileManager.default.attributesOfItem(atPath: file(directory, job.id, "stdout"))[
                    .posixPermissions] as? Int
            #expect(mode == 0o600)
            #expect(try await store.job(job.id)?.stdoutBytes == first.count + 3)

            _ = try await store.finish(job.id, JobOutcome(state: .succeeded, exitCode: 0, finishedAt: 5_000))
            #expect(try await store.purgeFinished(keeping: 0) == 1)
            #expect(!FileManager.default.fileExists(atPath: file(directory, job.id, "stdout")))
            #expect(!FileManager.default.fileExists(atPath: file(directory, job.id, "stderr")))
        }
    }

    @Test("bytes a crash left beyond the recorded size are cut when the store opens again, and never read")
    func crashTailIsTrimmed() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let id: JobID
        do {
            let store = try SQLiteJobStore(path: directory + "/jobs.sqlite")
            id = try await store.job(in: .running).id
            try await store.appendOutput(id, stream: .stdout, offset: 0, bytes: Array("recorded".utf8))
        }
        // What a crash between writing the file and recording its size leaves.
        let handle = try #require(FileHandle(forWritingAtPath: file(directory, id, "stdout")))
        try handle.seekToEnd()
        try handle.write(contentsOf: Array(" unrecorded".utf8))
        try handle.close()

        let reopened = try SQLiteJobStore(path: directory + "/jobs.sqlite")
        #expect(contents(file(directory, id, "stdout")) == Array("recorded".utf8))
        #expect(try await reopened.everything(id, .stdout) == Array("recorded".utf8))
    }

    @Test("a retried job starts its output again: the last attempt's files are deleted")
    func requeueDeletesOutput() async throws {
        try await withStore(.sqliteFile) { store, directory in
            let job = try await store.submit()
            let token = AttemptToken.random()
            _ = try await store.claim(job.id, worker: "w", token: token, state: .running, at: 2_000)
            try await store.appendOutput(job.id, stream: .stdout, offset: 0, bytes: Array("first try".utf8))
            #expect(try await store.requeue(job.id, token: token, reason: "worker lost"))
            #expect(!FileManager.default.fileExists(atPath: file(directory, job.id, "stdout")))
            #expect(try await store.everything(job.id, .stdout) == [])
        }
    }

    @Test("a write the output folder refuses throws why, records nothing and keeps what was stored")
    func refusedWriteRecordsNothing() async throws {
        try await withStore(.sqliteFile) { store, directory in
            let job = try await store.job(in: .running)
            try await store.appendOutput(job.id, stream: .stdout, offset: 0, bytes: Array("kept".utf8))
            // The job's folder replaced by a file: every open under it fails (ENOTDIR), even as root.
            let shard = "\(directory)/output/\(job.id.rawValue.prefix(2))"
            try FileManager.default.moveItem(atPath: shard, toPath: shard + ".saved")
            #expect(FileManager.default.createFile(atPath: shard, contents: Data("x".utf8)))
            let error = await #expect(throws: StoreError.self) {
                try await store.appendOutput(job.id, stream: .stdout, offset: 4, bytes: Array("lost".utf8))
            }
            #expect(error?.description.contains("Not a directory") == true)
            #expect(try await store.job(job.id)?.stdoutBytes == 4)
            try FileManager.default.removeItem(atPath: shard)
            try FileManager.default.moveItem(atPath: shard + ".saved", toPath: shard)
            #expect(try await store.everything(job.id, .stdout) == Array("kept".utf8))
        }
    }

    @Test("output an older version kept in SQLite moves to files when the store opens")
    func migratesOutputOutOfSQLite() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/jobs.sqlite"
        let id = JobID.random()
        let stdout = generatedBytes(count: 70_000, seed: 7)
        do {
            // The schema as the last version left it, with output rows in two pieces.
            let old = try DatabaseQueue(path: path)
            try SQLiteJobStore.migrator.migrate(old, upTo: "v8: isolating tokens")
            try await old.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO jobs (id, spec, state, created_at, finished_at, exit_code, stdout_bytes, stderr_bytes)
                        VALUES (?, ?, 'succeeded', 1000, 2000, 0, ?, 3)
                        """, arguments: [id.rawValue, Data(#"{"command":"true"}"#.utf8), stdout.count])
                let seq = db.lastInsertedRowID
                try db.execute(
                    sql: "INSERT INTO output (job_seq, stream, offset, data) VALUES (?, 1, 0, ?), (?, 1, 50000, ?)",
                    arguments: [seq, Data(stdout[..<50_000]), seq, Data(stdout[50_000...])])
                try db.execute(
                    sql: "INSERT INTO output (job_seq, stream, offset, data) VALUES (?, 2, 0, ?)",
                    arguments: [seq, Data("err".utf8)])
            }
        }
        let store = try SQLiteJobStore(path: path)
        #expect(try await store.everything(id, .stdout) == stdout)
        #expect(try await store.everything(id, .stderr) == Array("err".utf8))
        #expect(contents(file(directory, id, "stdout")) == stdout)
        let tableLeft = try await store.db.read { db in try db.tableExists("output") }
        #expect(!tableLeft)
    }
}
