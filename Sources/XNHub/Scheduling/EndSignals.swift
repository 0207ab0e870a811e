import NIOCore
import NIOPosix
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
        /// Fires the waiter once its time is up; cancelled when something else fires it first.
        var timer: Scheduled<Void>?
    }

    private let waiters = Mutex<[JobID: [UInt64: Waiter]]>([:])
    private let counter = Atomic<UInt64>(0)

    func register(_ id: JobID) -> UInt64 {
        let ticket = counter.add(1, ordering: .relaxed).newValue
        waiters.withLock { $0[id, default: [:]][ticket] = Waiter() }
        return ticket
    }

    /// Returns the ended job once it ends, or nil when `timeout` passes first (or the waiting task
    /// is cancelled); always unregisters. The timeout is an event loop's timer (the one this runs
    /// on, when it runs on one), not a task of its own: a task group with a sleeping child per
    /// `?wait` cost two tasks and a timer of Swift's pool for every submission.
    func wait(_ id: JobID, ticket: UInt64, timeout: Duration) async -> JobRecord? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let parked = waiters.withLock { all -> Bool in
                    guard var waiter = all[id]?[ticket], !waiter.fired else { return false }
                    waiter.continuation = continuation
                    all[id]?[ticket] = waiter
                    return true
                }
                guard parked else { return continuation.resume() }
                let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
                let timer = loop.scheduleTask(in: TimeAmount(timeout)) { self.fire(id, ticket: ticket, ended: nil) }
                let firedMeanwhile = waiters.withLock { all -> Bool in
                    guard var waiter = all[id]?[ticket], !waiter.fired else { return true }
                    waiter.timer = timer
                    all[id]?[ticket] = waiter
                    return false
                }
                if firedMeanwhile { timer.cancel() }
            }
        } onCancel: {
            fire(id, ticket: ticket, ended: nil)
        }
        return cancel(id, ticket: ticket)
    }

    /// Whether the waiter is parked, waiting for an end or its time (for tests).
    func isParked(_ id: JobID, ticket: UInt64) -> Bool {
        waiters.withLock { $0[id]?[ticket]?.continuation != nil }
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
        let (continuation, timer) = waiters.withLock { all -> (CheckedContinuation<Void, Never>?, Scheduled<Void>?) in
            guard var waiter = all[id]?[ticket] else { return (nil, nil) }
            waiter.fired = true
            if let ended { waiter.ended = ended }
            let taken = (waiter.continuation, waiter.timer)
            waiter.continuation = nil
            waiter.timer = nil
            all[id]?[ticket] = waiter
            return taken
        }
        timer?.cancel()
        continuation?.resume()
    }
}
