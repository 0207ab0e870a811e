import Foundation
import Synchronization
import XNProtocol
import XNStore

/// A SQLite store in memory whose writes can be made to fail, to see what the hub does when its
/// store does: every call goes through to the real store unless a failure is armed for it.
final class FailingStore: JobStore, TranscriptStore, TokenStore {
    struct Injected: Error, CustomStringConvertible {
        var description: String
    }

    let base: SQLiteJobStore
    /// Output appends fail while this is above zero (each failure counts it down; `Int.max`: always).
    let failingAppends = Atomic<Int>(0)
    /// Ends (`finish`) fail while this is above zero.
    let failingFinishes = Atomic<Int>(0)
    /// Ends that were tried, failed or not.
    let finishCalls = Atomic<Int>(0)
    /// Counts fail while set (the readiness check reads one).
    let failingCounts = Atomic<Bool>(false)

    init() throws {
        base = try SQLiteJobStore(path: nil)
    }

    private static func consume(_ counter: borrowing Atomic<Int>) -> Bool {
        while true {
            let value = counter.load(ordering: .relaxed)
            guard value > 0 else { return false }
            if value == .max { return true }
            if counter.compareExchange(expected: value, desired: value - 1, ordering: .relaxed).exchanged {
                return true
            }
        }
    }

    func appendOutput(_ id: JobID, stream: OutputStreamKind, offset: Int, bytes: ArraySlice<UInt8>) async throws {
        if Self.consume(failingAppends) { throw Injected(description: "disk I/O error (injected)") }
        try await base.appendOutput(id, stream: stream, offset: offset, bytes: bytes)
    }

    func finish(_ id: JobID, _ outcome: JobOutcome, token: AttemptToken?) async throws -> JobRecord? {
        finishCalls.add(1, ordering: .relaxed)
        if Self.consume(failingFinishes) { throw Injected(description: "database is locked (injected)") }
        return try await base.finish(id, outcome, token: token)
    }

    func insert(_ job: JobRecord) async throws -> JobRecord { try await base.insert(job) }
    func job(_ id: JobID) async throws -> JobRecord? { try await base.job(id) }
    func list(_ filter: JobFilter, before: Int64?, limit: Int) async throws -> [JobRecord] {
        try await base.list(filter, before: before, limit: limit)
    }
    func queued(limit: Int) async throws -> [QueuedJob] { try await base.queued(limit: limit) }
    func queueCounts() async throws -> QueueCounts { try await base.queueCounts() }
    func claim(
        _ id: JobID, worker: String, token: AttemptToken, state: JobState, at time: Int64
    ) async throws
        -> JobRecord?
    {
        try await base.claim(id, worker: worker, token: token, state: state, at: time)
    }
    func markStarted(_ id: JobID, token: AttemptToken) async throws -> Bool {
        try await base.markStarted(id, token: token)
    }
    func requeue(_ id: JobID, token: AttemptToken, reason: String) async throws -> Bool {
        try await base.requeue(id, token: token, reason: reason)
    }
    func activeJobs() async throws -> [JobRecord] { try await base.activeJobs() }
    func output(_ id: JobID, stream: OutputStreamKind, from offset: Int, limit: Int) async throws -> [UInt8] {
        try await base.output(id, stream: stream, from: offset, limit: limit)
    }
    func purgeFinished(keeping: Int) async throws -> Int { try await base.purgeFinished(keeping: keeping) }
    func pendingCallbacks() async throws -> [JobRecord] {
        try await base.pendingCallbacks()
    }

    func recordCallback(_ id: JobID, _ delivery: CallbackDelivery, status: String?) async throws {
        try await base.recordCallback(id, delivery, status: status)
    }
    func count(state: JobState?) async throws -> Int {
        if failingCounts.load(ordering: .relaxed) { throw Injected(description: "disk I/O error (injected)") }
        return try await base.count(state: state)
    }

    func startTranscript(
        job: JobID, token: String?, peer: String, at: Int64, rows: Int, cols: Int
    ) async throws
        -> Int64
    {
        try await base.startTranscript(job: job, token: token, peer: peer, at: at, rows: rows, cols: cols)
    }
    func appendTranscript(_ session: Int64, _ events: [TranscriptEvent]) async throws {
        try await base.appendTranscript(session, events)
    }
    func endTranscript(_ session: Int64, at: Int64) async throws { try await base.endTranscript(session, at: at) }
    func transcripts(of job: JobID) async throws -> [TranscriptInfo] { try await base.transcripts(of: job) }
    func transcript(_ session: Int64) async throws -> (TranscriptInfo, [TranscriptEvent])? {
        try await base.transcript(session)
    }

    func insertToken(_ token: TokenRecord) async throws { try await base.insertToken(token) }
    func tokens() async throws -> [TokenRecord] { try await base.tokens() }
    func revokeToken(named name: String, at time: Int64) async throws -> TokenRecord? {
        try await base.revokeToken(named: name, at: time)
    }
}
