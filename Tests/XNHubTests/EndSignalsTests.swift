import Foundation
import Testing
import XNProtocol

@testable import XNHub

/// `?wait=`'s long poll: the ended job when it ends, nothing when the time is up or the waiting
/// request goes away, and never a waiter left behind.
@Suite("EndSignals", .timeLimit(.minutes(1)))
struct EndSignalsTests {
    static func ended(_ id: JobID) -> JobRecord {
        var record = JobRecord(id: id, spec: JobSpec(command: "true"), createdAt: 1_000)
        record.state = .succeeded
        return record
    }

    /// Waits (up to 10 s) until the waiter is parked.
    static func parked(_ signals: EndSignals, _ id: JobID, _ ticket: UInt64) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if signals.isParked(id, ticket: ticket) { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    @Test("a waiter gets the ended job, whether it ends before or during the wait")
    func endedJob() async {
        let signals = EndSignals()
        let early = JobID.random()
        let ticket = signals.register(early)
        signals.notify(Self.ended(early))
        #expect(await signals.wait(early, ticket: ticket, timeout: .seconds(30))?.id == early)

        let late = JobID.random()
        let lateTicket = signals.register(late)
        async let waited = signals.wait(late, ticket: lateTicket, timeout: .seconds(30))
        #expect(await Self.parked(signals, late, lateTicket))
        signals.notify(Self.ended(late))
        #expect(await waited?.state == .succeeded)
    }

    @Test("the wait ends with nothing once its time is up")
    func timeout() async {
        let signals = EndSignals()
        let id = JobID.random()
        let began = ContinuousClock.now
        #expect(await signals.wait(id, ticket: signals.register(id), timeout: .milliseconds(200)) == nil)
        let waited = ContinuousClock.now - began
        #expect(waited >= .milliseconds(200) && waited < .seconds(10), "\(waited)")
        // Unregistered: a later end finds nobody to wake.
        signals.notify(Self.ended(id))
    }

    @Test("a cancelled wait ends at once, with nothing")
    func cancelled() async {
        let signals = EndSignals()
        let id = JobID.random()
        let ticket = signals.register(id)
        let waiting = Task { await signals.wait(id, ticket: ticket, timeout: .seconds(50)) }
        #expect(await Self.parked(signals, id, ticket))
        let began = ContinuousClock.now
        waiting.cancel()
        #expect(await waiting.value == nil)
        #expect(ContinuousClock.now - began < .seconds(10))
    }
}
