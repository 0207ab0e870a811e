import Dispatch
import Foundation
import GRDB
import Testing

@testable import XNStore

/// Group commit: writes that wait share one transaction, and each write's failure stays its own.
@Suite("GroupCommit")
struct GroupCommitTests {
    struct Refused: Error, Equatable {}

    /// An in-memory database with a table `t(x)` and a parent/child pair whose foreign key is
    /// checked only at commit.
    func database() throws -> DatabaseQueue {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE t (x INTEGER NOT NULL);
                    CREATE TABLE parent (id INTEGER PRIMARY KEY);
                    CREATE TABLE child (parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
                    """)
        }
        return queue
    }

    /// Keeps the writer busy with a write of its own (one transaction), committed on a thread of
    /// its own once the returned gate is opened, so the writes started meanwhile pile up behind it.
    func holdWriter(_ commits: GroupCommit) throws -> DispatchSemaphore {
        guard commits.lead() else { throw Refused() }
        let gate = DispatchSemaphore(value: 0)
        Thread { _ = try? commits.commitLed { _ in gate.wait() } }.start()
        return gate
    }

    /// Waits (bounded) until `count` writes are waiting for the next transaction.
    func waitUntilWaiting(_ commits: GroupCommit, _ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while commits.waiting < count {
            guard ContinuousClock.now < deadline else {
                Issue.record("only \(commits.waiting) of \(count) writes ever waited")
                throw Refused()
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Starts `work` behind the held writer and returns once it waits there, so writes queue in
    /// the order they are started.
    func enqueue(
        _ commits: GroupCommit, _ work: @escaping @Sendable (Database) throws -> Void
    ) async throws -> Task<Void, any Error> {
        let before = commits.waiting
        let task = Task { try await commits.write(work) }
        try await waitUntilWaiting(commits, before + 1)
        return task
    }

    func values(_ queue: DatabaseQueue) throws -> [Int] {
        try queue.read { db in try Int.fetchAll(db, sql: "SELECT x FROM t ORDER BY x") }
    }

    @Test("fifty writes that wait behind a busy writer are committed in one transaction")
    func burstSharesOneTransaction() async throws {
        let queue = try database()
        let commits = GroupCommit(queue)
        let gate = try holdWriter(commits)
        try await withThrowingTaskGroup(of: (Int, Int64).self) { group in
            for x in 1...50 {
                group.addTask {
                    let rowID = try await commits.write { db in
                        try db.execute(sql: "INSERT INTO t (x) VALUES (?)", arguments: [x])
                        return db.lastInsertedRowID
                    }
                    return (x, rowID)
                }
            }
            try await waitUntilWaiting(commits, 50)
            gate.signal()
            var rowIDs = Set<Int64>()
            for try await (_, rowID) in group { rowIDs.insert(rowID) }
            #expect(rowIDs.count == 50)
        }
        // The held write's transaction, then one for all fifty.
        #expect(commits.transactions == 2)
        #expect(try values(queue) == Array(1...50))
        // A lone write afterwards is its own transaction, committed at once.
        try await commits.write { db in try db.execute(sql: "INSERT INTO t (x) VALUES (51)") }
        #expect(commits.transactions == 3)
        #expect(try values(queue).last == 51)
    }

    @Test("a write that throws is undone alone and its caller gets its error; the rest of its batch commits")
    func failingWriteRollsBackAlone() async throws {
        let queue = try database()
        let commits = GroupCommit(queue)
        let gate = try holdWriter(commits)
        let first = try await enqueue(commits) { db in try db.execute(sql: "INSERT INTO t (x) VALUES (1)") }
        let second = try await enqueue(commits) { db in
            try db.execute(sql: "INSERT INTO t (x) VALUES (2)")
            throw Refused()
        }
        let third = try await enqueue(commits) { db in try db.execute(sql: "INSERT INTO t (x) VALUES (3)") }
        gate.signal()
        try await first.value
        await #expect(throws: Refused.self) { try await second.value }
        try await third.value
        #expect(commits.transactions == 2)
        #expect(try values(queue) == [1, 3])
    }

    @Test("a transaction that cannot commit fails every write in it, stores none, and the next write commits")
    func failedCommitFailsTheBatch() async throws {
        let queue = try database()
        let commits = GroupCommit(queue)
        let gate = try holdWriter(commits)
        let good = try await enqueue(commits) { db in try db.execute(sql: "INSERT INTO t (x) VALUES (1)") }
        let orphan = try await enqueue(commits) { db in try db.execute(sql: "INSERT INTO child (parent) VALUES (7)") }
        gate.signal()
        await #expect(throws: DatabaseError.self) { try await good.value }
        await #expect(throws: DatabaseError.self) { try await orphan.value }
        #expect(try values(queue) == [])
        try await commits.write { db in try db.execute(sql: "INSERT INTO t (x) VALUES (2)") }
        #expect(try values(queue) == [2])
    }

    @Test(
        "a lone write that throws is undone, its caller gets its error, and a lone write that cannot commit stores nothing"
    )
    func loneWritesFailAlone() async throws {
        let queue = try database()
        let commits = GroupCommit(queue)
        await #expect(throws: Refused.self) {
            try await commits.write { db in
                try db.execute(sql: "INSERT INTO t (x) VALUES (1)")
                throw Refused()
            }
        }
        await #expect(throws: DatabaseError.self) {
            try await commits.write { db in try db.execute(sql: "INSERT INTO child (parent) VALUES (7)") }
        }
        #expect(try await queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM child") } == 0)
        let value = try await commits.write { db -> Int in
            try db.execute(sql: "INSERT INTO t (x) VALUES (2)")
            return 2
        }
        #expect(value == 2)
        #expect(try values(queue) == [2])
        #expect(commits.transactions == 3)
    }
}
