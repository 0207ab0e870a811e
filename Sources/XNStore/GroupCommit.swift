import GRDB
import Synchronization

/// Writes that arrive while another is being committed share the next transaction, so a burst
/// of submissions and ends costs a few commits instead of one each.
///
/// No task of its own. A write that finds no batch being committed commits itself at once, on its
/// caller's thread: GRDB's writer queue is then idle, so its synchronous write runs there, and
/// the write costs no hand-off to the writer queue and back (on a VM, each wake of an idle thread
/// costs tens of microseconds). Writes that arrive meanwhile wait; the first of them schedules
/// one drain on the writer queue, which commits whatever is waiting, batch after batch, until
/// nothing is. In a batch each write runs in its own savepoint, so one that throws is rolled back
/// alone and the rest of its batch commits. Callers resume only once their batch is committed.
final class GroupCommit: Sendable {
    /// One caller's write, type-erased so writes of any result share a batch.
    private struct Request: Sendable {
        /// Runs the write in its savepoint; says whether it succeeded and how to resume its
        /// caller once the transaction's fate is known.
        let run: @Sendable (Database) -> (succeeded: Bool, resume: @Sendable ((any Error)?) -> Void)
        /// Resumes a caller whose write never ran (its transaction could not begin or commit).
        let fail: @Sendable (any Error) -> Void
    }

    private struct State {
        var waiting: [Request] = []
        var draining = false
        var transactions = 0
    }

    private let writer: any DatabaseWriter
    private let state = Mutex(State())

    init(_ writer: any DatabaseWriter) {
        self.writer = writer
    }

    /// Transactions committed (or attempted) so far.
    var transactions: Int { state.withLock { $0.transactions } }
    /// Writes waiting for the next transaction.
    var waiting: Int { state.withLock { $0.waiting.count } }

    /// Runs `work` inside a shared transaction and returns its result once that is committed;
    /// throws what `work` threw (its changes undone) or why the transaction failed.
    func write<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        if lead() { return try commitLed(work) }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let request = Request(
                run: { db in
                    do {
                        let value = try work(db)
                        return (
                            true,
                            { error in
                                if let error {
                                    continuation.resume(throwing: error)
                                } else {
                                    continuation.resume(returning: value)
                                }
                            }
                        )
                    } catch {
                        return (false, { _ in continuation.resume(throwing: error) })
                    }
                },
                fail: { continuation.resume(throwing: $0) })
            let startsDrain = state.withLock { state in
                state.waiting.append(request)
                defer { state.draining = true }
                return !state.draining
            }
            if startsDrain { writer.asyncWriteWithoutTransaction { db in self.drain(db) } }
        }
    }

    /// Claims the writer for one write of the caller's own when no batch is being committed
    /// (then nothing else uses GRDB's writer queue); the caller must then call `commitLed`.
    func lead() -> Bool {
        state.withLock { state in
            guard !state.draining else { return false }
            state.draining = true
            state.transactions += 1
            return true
        }
    }

    /// Commits `work` alone, on this thread, after `lead()` claimed the writer; then hands the
    /// writes that arrived meanwhile to a drain on the writer queue, or releases the writer.
    func commitLed<T>(_ work: (Database) throws -> T) throws -> T {
        defer {
            let more = state.withLock { state in
                if state.waiting.isEmpty { state.draining = false }
                return !state.waiting.isEmpty
            }
            if more { writer.asyncWriteWithoutTransaction { db in self.drain(db) } }
        }
        return try writer.writeWithoutTransaction { db in
            var outcome: Result<T, any Error> = .failure(StoreError("the write never ran"))
            try db.inTransaction(.immediate) {
                do {
                    outcome = .success(try work(db))
                    return .commit
                } catch {
                    outcome = .failure(error)
                    return .rollback
                }
            }
            // The work's value, committed, or its error, its changes undone.
            return try outcome.get()
        }
    }

    /// Commits batches on the writer queue until none is waiting.
    private func drain(_ db: Database) {
        while true {
            let batch = state.withLock { state -> [Request] in
                let batch = state.waiting
                state.waiting.removeAll(keepingCapacity: true)
                if batch.isEmpty { state.draining = false } else { state.transactions += 1 }
                return batch
            }
            if batch.isEmpty { return }
            commit(batch, in: db)
        }
    }

    private func commit(_ batch: [Request], in db: Database) {
        if batch.count == 1 { return commit(alone: batch[0], in: db) }
        var resumes: [@Sendable ((any Error)?) -> Void] = []
        resumes.reserveCapacity(batch.count)
        do {
            try db.inTransaction(.immediate) {
                for request in batch {
                    try db.inSavepoint {
                        let outcome = request.run(db)
                        resumes.append(outcome.resume)
                        return outcome.succeeded ? .commit : .rollback
                    }
                }
                return .commit
            }
            for resume in resumes { resume(nil) }
        } catch {
            // Nothing of the batch is stored: every caller learns why, including those whose
            // write never ran.
            for resume in resumes { resume(error) }
            for request in batch.dropFirst(resumes.count) { request.fail(error) }
        }
    }

    /// A write with no other in its batch (the common case without a burst) needs no savepoint:
    /// the transaction is rolled back if it throws. That spares two statements per write.
    private func commit(alone request: Request, in db: Database) {
        var resume: (@Sendable ((any Error)?) -> Void)?
        do {
            try db.inTransaction(.immediate) {
                let outcome = request.run(db)
                resume = outcome.resume
                return outcome.succeeded ? .commit : .rollback
            }
            resume?(nil)
        } catch {
            if let resume { resume(error) } else { request.fail(error) }
        }
    }
}
