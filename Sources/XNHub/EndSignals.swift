import Synchronization
import XNProtocol

/// Wakes whoever waits for a job to end (long-polling `?wait=`), without polling the store.
///
/// A waiter registers before it checks the store, so an end that lands between the check and
/// the wait is not missed.
final class EndSignals: Sendable {
    private struct Waiter {
        var continuation: CheckedContinuation<Void, Never>?
        var fired = false
    }

    private let waiters = Mutex<[JobID: [UInt64: Waiter]]>([:])
    private let counter = Atomic<UInt64>(0)

    func register(_ id: JobID) -> UInt64 {
        let ticket = counter.add(1, ordering: .relaxed).newValue
        waiters.withLock { $0[id, default: [:]][ticket] = Waiter() }
        return ticket
    }

    /// Returns when the job ends or `timeout` passes, whichever is first; always unregisters.
    func wait(_ id: JobID, ticket: UInt64, timeout: Duration) async {
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
            self.fire(id, ticket: ticket)
        }
        waiters.withLock { all in
            all[id]?[ticket] = nil
            if all[id]?.isEmpty == true { all[id] = nil }
        }
    }

    func notify(_ id: JobID) {
        let tickets = waiters.withLock { all in all[id].map { Array($0.keys) } ?? [] }
        for ticket in tickets { fire(id, ticket: ticket) }
    }

    private func fire(_ id: JobID, ticket: UInt64) {
        let continuation = waiters.withLock { all -> CheckedContinuation<Void, Never>? in
            guard var waiter = all[id]?[ticket] else { return nil }
            waiter.fired = true
            let continuation = waiter.continuation
            waiter.continuation = nil
            all[id]?[ticket] = waiter
            return continuation
        }
        continuation?.resume()
    }
}
