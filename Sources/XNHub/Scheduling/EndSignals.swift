import Synchronization
import XNProtocol

/// Wakes whoever waits for a job to end (long-polling `?wait=`) and hands them the ended record,
/// so neither the wait nor the answer needs the store.
///
/// A waiter registers before it checks the store, so an end that lands between the check and
/// the wait is not missed.
final class EndSignals: Sendable {
    private struct Waiter {
        var continuation: CheckedContinuation<Void, Never>?
        var fired = false
        var ended: JobRecord?
    }

    private let waiters = Mutex<[JobID: [UInt64: Waiter]]>([:])
    private let counter = Atomic<UInt64>(0)

    func register(_ id: JobID) -> UInt64 {
        let ticket = counter.add(1, ordering: .relaxed).newValue
        waiters.withLock { $0[id, default: [:]][ticket] = Waiter() }
        return ticket
    }

    /// Returns the ended job once it ends, or nil when `timeout` passes first; always unregisters.
    func wait(_ id: JobID, ticket: UInt64, timeout: Duration) async -> JobRecord? {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let fired = self.waiters.withLock { all -> Bool in
                        guard var waiter = all[id]?[ticket] else { return true }
                        if waiter.fired { return true }
                        waiter.continuation = continuation
                        all[id]?[ticket] = waiter
                        return false
                    }
                    if fired { continuation.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
            }
            await group.next()
            group.cancelAll()
            // Whichever finished first, wake the other so the group can end.
            self.fire(id, ticket: ticket, ended: nil)
        }
        return cancel(id, ticket: ticket)
    }

    /// Unregisters a waiter that will not wait after all; returns the ended job if it came.
    @discardableResult
    func cancel(_ id: JobID, ticket: UInt64) -> JobRecord? {
        waiters.withLock { all in
            let waiter = all[id]?.removeValue(forKey: ticket)
            if all[id]?.isEmpty == true { all[id] = nil }
            return waiter?.ended
        }
    }

    func notify(_ job: JobRecord) {
        let tickets = waiters.withLock { all in all[job.id].map { Array($0.keys) } ?? [] }
        for ticket in tickets { fire(job.id, ticket: ticket, ended: job) }
    }

    private func fire(_ id: JobID, ticket: UInt64, ended: JobRecord?) {
        let continuation = waiters.withLock { all -> CheckedContinuation<Void, Never>? in
            guard var waiter = all[id]?[ticket] else { return nil }
            waiter.fired = true
            if let ended { waiter.ended = ended }
            let continuation = waiter.continuation
            waiter.continuation = nil
            all[id]?[ticket] = waiter
            return continuation
        }
        continuation?.resume()
    }
}
