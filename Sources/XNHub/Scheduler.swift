import Foundation
import Logging
import ServiceLifecycle
import XNExec
import XNProtocol
import XNStore

/// Owns the queue and the hub's local slots: takes the oldest queued jobs from the store while a
/// slot is free, runs them through a `JobExecutor`, and records how they end.
///
///     submit ──▶ store (queued) ──▶ dispatch ──▶ running ──▶ finish ──▶ store, waiters, callback
///                                     ▲                        │
///                                     └──── slot freed ────────┘
///
/// - Important: Run it as a service (`run()`); every job task is a child of that call, so a
///   shutdown waits for (or kills) them all.
public actor Scheduler: Service {
    let store: any JobStore
    let executor: any JobExecutor
    let configuration: HubConfiguration
    let logger: Logger
    let endSignals = EndSignals()
    /// Wakes attach sessions on new output and on the end.
    nonisolated let activity = JobActivity()
    /// Ended jobs with a callback, delivered by `run()` off the path that recorded the end: a
    /// slow or unreachable callback must hold up neither a job's slot nor a worker's session.
    private let endedWithCallback: AsyncStream<JobRecord>
    private let callbackQueue: AsyncStream<JobRecord>.Continuation
    private let launches: AsyncStream<JobRecord>
    private let launchQueue: AsyncStream<JobRecord>.Continuation
    /// Finished by `recover()`: `run()` dispatches nothing before, or recovery would take a job it
    /// just started for one a previous hub left running, and mark it lost.
    private let recovered: AsyncStream<Void>
    private let recoveredSignal: AsyncStream<Void>.Continuation
    private var running: [JobID: RunningJob] = [:]
    /// Input for jobs whose process does not exist yet.
    var pendingInput: [JobID: PendingInput] = [:]
    var accepting = true
    private var dispatching = false
    private var dispatchAgain = false
    var finishedCount = 0
    /// Jobs waiting in the store; zero lets a submission skip the queue round trip.
    var queuedCount = 0
    /// Connected workers by session.
    var workers: [UInt64: RemoteWorker] = [:]
    /// Attempts running on workers (or waiting for their worker to come back), by token.
    var remote: [UInt64: RemoteAttempt] = [:]
    var nextSession: UInt64 = 0
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    /// A job holding a local slot.
    struct RunningJob {
        var process: (any RunningProcess)?
        /// Set by the first cancel, timeout or shutdown; decides the final state.
        var stopReason: StopReason?
        /// Present once the process runs: wakes the task that kills it.
        var stops: AsyncStream<Void>.Continuation?
    }

    enum StopReason: Sendable, Equatable {
        case canceled, timedOut(Double), shutdown
    }

    public init(store: any JobStore, executor: any JobExecutor, configuration: HubConfiguration, logger: Logger) {
        self.store = store
        self.executor = executor
        self.configuration = configuration
        self.logger = logger
        (launches, launchQueue) = AsyncStream.makeStream(of: JobRecord.self)
        (endedWithCallback, callbackQueue) = AsyncStream.makeStream(of: JobRecord.self)
        (recovered, recoveredSignal) = AsyncStream.makeStream(of: Void.self)
    }

    /// Resolves what a previous hub process left running; must finish before the server accepts jobs.
    public func recover() async throws {
        let lost = try await store.markInterruptedLost(
            reason: "hub stopped while the job was running; its exit was not recorded", at: Timestamp.now())
        if lost > 0 { logger.warning("marked \(lost) interrupted job(s) lost") }
        try await adoptRemoteAttempts()
        queuedCount = try await store.count(state: .queued)
        finishedCount = try await store.count(state: nil) - queuedCount
        recoveredSignal.finish()
    }

    public func run() async throws {
        for await _ in recovered {}
        guard !Task.isCancelled else { return }
        let callbacks = CallbackSender(configuration: configuration, store: store, logger: logger)
        await withDiscardingTaskGroup { outer in
            outer.addTask {
                await withDiscardingTaskGroup { deliveries in
                    for await job in self.endedWithCallback {
                        deliveries.addTask { await callbacks.deliver(job) }
                    }
                }
            }
            await withDiscardingTaskGroup { group in
                group.addTask { await self.dispatch() }
                group.addTask { await self.reapOrphansUntilCancelled() }
                group.addTask {
                    try? await gracefulShutdown()
                    await self.drain()
                }
                for await job in launches {
                    group.addTask { await self.execute(job) }
                }
            }
            // Every job task has ended: deliver what is queued, then stop.
            callbackQueue.finish()
        }
        await callbacks.shutdown()
    }

    /// Stores a new job. With a slot free and nothing queued before it, it is stored as running
    /// and started at once (one write instead of insert, then claim).
    /// `owner` names the submitting token; with `ownerCap`, that token may have at most so many jobs queued.
    public func submit(
        _ spec: JobSpec, id: JobID = .random(), owner: String? = nil, ownerCap: Int? = nil
    ) async throws -> JobRecord {
        var job = JobRecord(id: id, spec: spec, createdAt: Timestamp.now())
        job.owner = owner
        // A job asking for labels is for workers only: it never starts on the hub's own slots.
        let startsNow = accepting && queuedCount == 0 && running.count < configuration.slots && spec.labels.isEmpty
        if !startsNow, let limit = configuration.maxQueued, queuedCount >= limit { throw QueueFull(limit: limit) }
        if !startsNow, let owner, let ownerCap, try await store.countQueued(owner: owner) >= ownerCap {
            throw QueueFull(limit: ownerCap, token: owner)
        }
        await purgeBeyondLimit()
        // Checked again: the purge may have let others in.
        guard accepting, queuedCount == 0, running.count < configuration.slots, spec.labels.isEmpty else {
            job = try await store.insert(job)
            queuedCount += 1
            await dispatch()
            return job
        }
        running[id] = RunningJob(process: nil, stopReason: nil, stops: nil)
        job.state = .running
        job.startedAt = job.createdAt
        job.worker = "local"
        job.attempts = 1
        do {
            job = try await store.insert(job)
        } catch {
            running[id] = nil
            throw error
        }
        if accepting {
            launchQueue.yield(job)
        } else {
            // Shutdown began while it was being stored: it never ran.
            _ = try? await store.finish(
                id, JobOutcome(state: .lost, err: "hub shut down before the job started", finishedAt: Timestamp.now()))
            running[id] = nil
        }
        return job
    }

    /// Submits a job and returns it once it ended, or as it is after `timeout`.
    public nonisolated func submitAndWait(
        _ spec: JobSpec, owner: String? = nil, ownerCap: Int? = nil, timeout: Duration,
        submitted: @Sendable (JobRecord) -> Void = { _ in }
    ) async throws -> JobRecord {
        let id = JobID.random()
        let ticket = endSignals.register(id)
        let job: JobRecord
        do {
            job = try await submit(spec, id: id, owner: owner, ownerCap: ownerCap)
        } catch {
            endSignals.cancel(id, ticket: ticket)
            throw error
        }
        submitted(job)
        if let ended = await endSignals.wait(id, ticket: ticket, timeout: timeout) { return ended }
        return try await store.job(id) ?? job
    }

    /// The job, after waiting up to `timeout` for it to end; nil if there is no such job.
    public nonisolated func job(_ id: JobID, waitingUpTo timeout: Duration) async throws -> JobRecord? {
        let ticket = endSignals.register(id)
        let current: JobRecord?
        do {
            current = try await store.job(id)
        } catch {
            endSignals.cancel(id, ticket: ticket)
            throw error
        }
        guard let current, !current.state.isTerminal else {
            endSignals.cancel(id, ticket: ticket)
            return current
        }
        if let ended = await endSignals.wait(id, ticket: ticket, timeout: timeout) { return ended }
        return try await store.job(id)
    }

    /// Cancels a queued or running job; returns nil if it does not exist.
    public func cancel(_ id: JobID) async throws -> JobRecord? {
        if let token = remoteToken(of: id) {
            return try await cancelRemote(id, token: token)
        }
        if running[id] != nil {
            requestStop(id, .canceled)
            return try await job(id, waitingUpTo: configuration.killGrace + .seconds(5))
        }
        guard let job = try await store.job(id) else { return nil }
        guard job.state == .queued || job.state == .assigned else { return job }
        let outcome = JobOutcome(state: .canceled, err: "canceled before it started", finishedAt: Timestamp.now())
        guard let ended = try await store.finish(id, outcome) else { return try await store.job(id) }
        queuedCount = max(0, queuedCount - 1)
        jobEnded(ended)
        return ended
    }

    /// Fills free slots, local and on workers, with the oldest queued jobs each slot may run.
    /// Re-entrant calls fold into one pass.
    func dispatch() async {
        if dispatching {
            dispatchAgain = true
            return
        }
        dispatching = true
        defer { dispatching = false }
        repeat {
            dispatchAgain = false
            while accepting, freeCapacity > 0 {
                let jobs: [JobRecord]
                do {
                    jobs = try await store.queued(limit: max(freeCapacity, Self.queueScan))
                } catch {
                    logger.error("cannot read the queue: \(error)")
                    return
                }
                if jobs.isEmpty {
                    queuedCount = 0
                    break
                }
                var placed = 0
                for job in jobs where accepting && freeCapacity > 0 && running[job.id] == nil {
                    do {
                        if try await place(job) { placed += 1 }
                    } catch {
                        logger.error("cannot start job \(job.id): \(error)")
                        return
                    }
                }
                if placed == 0 { break }
            }
        } while dispatchAgain
    }

    /// How many queued jobs one dispatch pass looks at, so jobs behind one that no worker can
    /// take still run.
    static let queueScan = 256

    /// Slots free now, local and on workers that take jobs.
    var freeCapacity: Int {
        max(0, configuration.slots - running.count) + workers.values.reduce(0) { $0 + $1.freeSlots }
    }

    /// Starts `job` on the hub's slots or on a worker that matches it; false if none can take it.
    private func place(_ job: JobRecord) async throws -> Bool {
        if job.spec.labels.isEmpty && running.count < configuration.slots {
            guard try await store.markRunning(job.id, worker: "local", at: Timestamp.now()) else { return false }
            queuedCount = max(0, queuedCount - 1)
            running[job.id] = RunningJob(process: nil, stopReason: nil, stops: nil)
            launchQueue.yield(job)
            return true
        }
        guard let session = pickWorker(for: job.spec) else { return false }
        return try await assign(job, to: session)
    }

    /// Marks why a running job must stop and asks its task to kill it.
    func requestStop(_ id: JobID, _ reason: StopReason) {
        guard var job = running[id] else { return }
        if job.stopReason == nil {
            job.stopReason = reason
            running[id] = job
        }
        job.stops?.yield()
    }

    func attach(_ process: any RunningProcess, to id: JobID) -> AsyncStream<Void>? {
        guard var job = running[id] else { return nil }
        job.process = process
        // Input typed before the process existed goes in first, in order.
        for action in pendingInput.removeValue(forKey: id)?.actions ?? [] { _ = Self.apply(action, to: process) }
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        let pendingStop = job.stopReason != nil
        job = RunningJob(process: process, stopReason: job.stopReason, stops: continuation)
        running[id] = job
        if pendingStop { continuation.yield() }
        return stream
    }

    /// The process of a job running on the hub's slots, once it exists.
    func localProcess(_ id: JobID) -> (any RunningProcess)? {
        running[id]?.process
    }

    /// Whether the job holds a local slot (its process may not exist yet).
    func holdsLocalSlot(_ id: JobID) -> Bool {
        running[id] != nil
    }

    func stopReason(_ id: JobID) -> StopReason? {
        running[id]?.stopReason
    }

    /// Frees the slot, wakes waiters, purges beyond `-n`, and fills the slot again.
    func release(_ id: JobID) async {
        running[id]?.stops?.finish()
        running[id] = nil
        if running.isEmpty {
            idleWaiters.forEach { $0.resume() }
            idleWaiters = []
        }
        await dispatch()
    }

    /// Every end goes through here: waiters, the `-n` count, and the callback, if any.
    func jobEnded(_ job: JobRecord) {
        pendingInput[job.id] = nil
        endSignals.notify(job)
        activity.notify(job.id)
        finishedCount += 1
        if job.spec.callback != nil { callbackQueue.yield(job) }
    }

    /// http-runner's `-n`: when a job is created, the oldest finished jobs beyond the limit go.
    /// Purging at creation, not at the end of a job, lets a client read the job it waited for.
    private func purgeBeyondLimit() async {
        if let keep = configuration.maxFinishedJobs, finishedCount > keep {
            do {
                finishedCount -= try await store.purgeFinished(keeping: keep)
            } catch {
                logger.error("cannot purge finished jobs: \(error)")
            }
        }
    }

    /// Graceful shutdown: start nothing new, give running jobs the grace period, then kill them.
    private func drain() async {
        accepting = false
        launchQueue.finish()
        if !running.isEmpty {
            logger.info("waiting up to \(configuration.shutdownGrace) for \(running.count) running job(s)")
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.waitUntilIdle() }
                group.addTask { try? await Task.sleep(for: self.configuration.shutdownGrace) }
                await group.next()
                group.cancelAll()
                self.wakeIdleWaiters()
            }
        }
        for id in running.keys { requestStop(id, .shutdown) }
    }

    private func waitUntilIdle() async {
        if running.isEmpty { return }
        await withCheckedContinuation { idleWaiters.append($0) }
    }

    private func wakeIdleWaiters() {
        idleWaiters.forEach { $0.resume() }
        idleWaiters = []
    }
}

/// A submission that would queue more jobs than `--max-queued` allows.
public struct QueueFull: Error, Sendable {
    public let limit: Int
    /// The token whose own cap was reached; nil for the hub-wide one.
    public var token: String?

    public var message: String {
        guard let token else {
            return "the hub already has \(limit) job(s) queued, its limit (--max-queued); try again later"
        }
        return "token '\(token)' already has \(limit) job(s) queued, its limit; try again later"
    }
}
