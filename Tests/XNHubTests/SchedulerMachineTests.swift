import Testing
import XNProtocol

@testable import XNHub

/// The scheduler's rules, driven as events with no processes, sockets or store: the test plays
/// the store's answers itself.
@Suite("SchedulerMachine")
struct SchedulerMachineTests {
    /// A machine past recovery, with counted tokens (1, 2, 3, …) and a 5 s heartbeat timeout.
    static func machine(maxQueued: Int? = nil) -> SchedulerMachine {
        var settings = SchedulerMachine.Settings()
        settings.heartbeatTimeout = 5000
        settings.heartbeatTimeoutText = "5 seconds"
        settings.maxQueued = maxQueued
        var machine = SchedulerMachine(settings: settings, tokens: .counting(from: 1))
        machine.now = 1_000
        _ = machine.recover(active: [], queued: QueueCounts())
        return machine
    }

    static func hello(
        _ name: String, slots: Int, labels: [String: String] = [:], holding: [HeldAttempt] = []
    )
        -> WorkerHello
    {
        WorkerHello(name: name, labels: labels, slots: slots, version: "test", attempts: holding)
    }

    static func record(
        _ seq: Int64, labels: [String: String] = [:], owner: String? = nil, retries: Int = 0, keepsInput: Bool = false
    ) -> JobRecord {
        var spec = JobSpec(command: "true")
        spec.labels = labels
        spec.retries = retries
        if keepsInput { spec.tty = JobTerminal(rows: 24, cols: 80) }
        var record = JobRecord(id: .random(), spec: spec, createdAt: 1_000)
        record.seq = seq
        record.owner = owner
        return record
    }

    static func submission(_ record: JobRecord, ownerCap: Int? = nil) -> SchedulerMachine.Submission {
        .init(job: QueuedJob(record), ownerCap: ownerCap, outputCap: 100, retries: record.spec.retries)
    }

    /// The claims among `actions`, as (token, job, worker).
    static func claims(_ actions: [SchedulerAction]) -> [(AttemptToken, JobID, String)] {
        actions.compactMap {
            if case .claim(let token, let id, let worker, _) = $0 { return (token, id, worker) }
            return nil
        }
    }

    /// The store's answer to a claim: the job, now assigned (or running) under `token`.
    static func claimed(
        _ record: JobRecord, token: AttemptToken, worker: String, state: JobState = .assigned
    )
        -> JobRecord
    {
        var claimed = record
        claimed.state = state
        claimed.worker = worker
        claimed.attempts += 1
        claimed.attemptToken = token
        return claimed
    }

    /// Submits `job` while a slot is free and stores it as placed: its attempt's token.
    static func started(_ job: JobRecord, in machine: inout SchedulerMachine) throws -> AttemptToken {
        guard case .start(let token, let worker, _) = machine.submit(submission(job)) else {
            throw TestFailure("expected job \(job.seq) to start at once")
        }
        _ = machine.startStored(token, claimed(job, token: token, worker: worker))
        return token
    }

    /// The outcome of the finish that `actions` start with.
    static func finishedOutcome(_ actions: [SchedulerAction]) throws -> JobOutcome {
        guard case .finish(_, _, _, let outcome)? = actions.first else {
            throw TestFailure("expected a finish, got \(actions)")
        }
        return outcome
    }

    @Test("a job goes to a worker with its labels and a free slot; the rest wait queued")
    func placementByLabelsAndSlots() {
        var machine = Self.machine()
        _ = machine.workerJoined(1, Self.hello("gpu", slots: 1, labels: ["gpu": "1"]), inProcess: false)
        _ = machine.workerJoined(2, Self.hello("cpu", slots: 2), inProcess: false)

        let gpuJob = Self.record(1, labels: ["gpu": "1"])
        #expect(machine.submit(Self.submission(gpuJob)) == .start(AttemptToken(1), worker: "gpu", state: .assigned))
        let second = Self.record(2, labels: ["gpu": "1"])
        #expect(machine.submit(Self.submission(second)) == .queue, "gpu's only slot is taken")
        _ = machine.queuedStored(QueuedJob(second))
        // A job without labels goes to cpu: it runs on any worker.
        let plain = Self.record(3)
        #expect(machine.submit(Self.submission(plain)) == .queue, "the queue is not empty: it keeps its order")
        let actions = machine.queuedStored(QueuedJob(plain))
        let claims = Self.claims(actions)
        #expect(claims.count == 1)
        #expect(claims.first?.1 == plain.id && claims.first?.2 == "cpu")
        #expect(machine.waitingReason(labels: ["gpu": "1"]) == "waiting for a free slot on gpu")
        #expect(machine.waitingReason(labels: ["arch": "arm"]) == "waiting for a worker with arch=arm")
    }

    @Test("the hub's own slots take jobs without labels first; jobs with labels never go there")
    func inProcessPreferred() {
        var machine = Self.machine()
        _ = machine.workerJoined(1, Self.hello("remote", slots: 4), inProcess: false)
        _ = machine.workerJoined(2, Self.hello("local", slots: 1), inProcess: true)
        #expect(
            machine.submit(Self.submission(Self.record(1))) == .start(AttemptToken(1), worker: "local", state: .running)
        )
        #expect(
            machine.submit(Self.submission(Self.record(2)))
                == .start(AttemptToken(2), worker: "remote", state: .assigned))
        #expect(machine.workerList().map(\.name) == ["remote"], "the hub's own slots are not listed as a worker")
    }

    @Test("queued jobs are placed oldest first, one per free slot")
    func queueOrder() {
        var machine = Self.machine()
        let jobs = (1...3).map { Self.record(Int64($0)) }
        for job in jobs {
            #expect(machine.submit(Self.submission(job)) == .queue)
        }
        // Stored out of order: the window is still oldest first.
        for job in [jobs[2], jobs[0], jobs[1]] { _ = machine.queuedStored(QueuedJob(job)) }
        let first = Self.claims(machine.workerJoined(1, Self.hello("w", slots: 1), inProcess: false))
        #expect(first.map(\.1) == [jobs[0].id])
        let (token, _, _) = first[0]
        let assign = machine.claimed(token, Self.claimed(jobs[0], token: token, worker: "w"))
        #expect(assign.contains { if case .send(1, .assign(let a)) = $0 { a.job == jobs[0].id } else { false } })
        // It ends: its end is stored, then the next oldest takes the slot.
        let (_, end) = machine.ended(token, AttemptEnd(.exited(0)), session: 1)
        guard case .finish(_, _, true, let outcome)? = end.first else {
            Issue.record("expected a fenced finish, got \(end)")
            return
        }
        #expect(outcome.state == .succeeded)
        var ended = Self.claimed(jobs[0], token: token, worker: "w")
        ended.state = .succeeded
        let next = machine.finished(token, ended)
        #expect(next.contains(.send(1, .forget(token))))
        #expect(next.contains(.announce(ended)))
        #expect(Self.claims(next).map(\.1) == [jobs[1].id])
        #expect(machine.queued.total == 2, "a job counts as queued until its claim is stored")
    }

    @Test("the hub-wide queue cap is checked and reserved in one step")
    func hubWideCap() {
        var machine = Self.machine(maxQueued: 2)
        // Three submissions decided before any is stored: the third is refused.
        #expect(machine.submit(Self.submission(Self.record(1))) == .queue)
        #expect(machine.submit(Self.submission(Self.record(2))) == .queue)
        #expect(machine.submit(Self.submission(Self.record(3))) == .refuse(QueueFull(limit: 2)))
        // One could not be stored: its place is free again.
        _ = machine.queuedNotStored(owner: nil)
        #expect(machine.submit(Self.submission(Self.record(4))) == .queue)
    }

    @Test("a token's own queue cap counts only its jobs")
    func perTokenCap() {
        var machine = Self.machine()
        #expect(machine.submit(Self.submission(Self.record(1, owner: "ci"), ownerCap: 1)) == .queue)
        #expect(
            machine.submit(Self.submission(Self.record(2, owner: "ci"), ownerCap: 1))
                == .refuse(QueueFull(limit: 1, token: "ci")))
        #expect(machine.submit(Self.submission(Self.record(3, owner: "alice"), ownerCap: 1)) == .queue)
    }

    @Test("a lost worker's attempt is queued again while retries last, under a new token")
    func retriesWithFencing() throws {
        var machine = Self.machine()
        _ = machine.workerJoined(1, Self.hello("w", slots: 1), inProcess: false)
        let job = Self.record(1, retries: 1)
        let first = try Self.started(job, in: &machine)
        _ = machine.started(first, session: 1)

        // The link drops; nothing happens until the heartbeat timeout passes.
        machine.now = 2_000
        #expect(machine.workerLeft(1, expired: false).isEmpty)
        machine.now = 6_999
        #expect(machine.tick().isEmpty)
        machine.now = 7_000
        let requeue = machine.tick()
        #expect(
            requeue == [.requeue(job.id, first, reason: "attempt 1: worker w lost (no heartbeat within 5 seconds)")])
        _ = machine.requeued(first, true)
        #expect(machine.window.map(\.id) == [job.id])

        // Another worker takes it as attempt 2, with a new token.
        let claims = Self.claims(machine.workerJoined(2, Self.hello("v", slots: 1), inProcess: false))
        let second = try #require(claims.first?.0)
        #expect(second != first)
        var again = Self.claimed(job, token: second, worker: "v")
        again.attempts = 2
        _ = machine.claimed(second, again)

        // The first worker comes back and reports the old attempt: it is told to forget or kill it.
        let back = machine.workerJoined(
            3,
            Self.hello("w", slots: 1, holding: [HeldAttempt(attempt: first, job: job.id, end: AttemptEnd(.exited(0)))]),
            inProcess: false)
        #expect(back.contains(.send(3, .forget(first))))
        let (problem, late) = machine.ended(first, AttemptEnd(.exited(0)), session: 3)
        #expect(problem == nil)
        #expect(late == [.send(3, .forget(first))], "a fenced attempt's end is never stored")
        #expect(machine.started(first, session: 3) == [.send(3, .kill(first, reason: SchedulerMachine.staleAttempt))])
        #expect(machine.outputTarget(first, .stdout, session: 3) == .stale)

        // Attempt 2 is lost too: no retry is left.
        machine.now = 10_000
        _ = machine.workerLeft(2, expired: true)
        let lost = machine.attempts[second]?.phase
        guard case .closing(.finish(let outcome), _)? = lost else {
            Issue.record("expected the job to be lost, got \(String(describing: lost))")
            return
        }
        #expect(outcome.state == .lost)
        #expect(outcome.err == "worker v lost (no heartbeat within 5 seconds)")
    }

    @Test("a worker that comes back in time keeps its attempt and resumes from what was stored")
    func reconnectInTime() throws {
        var machine = Self.machine()
        _ = machine.workerJoined(1, Self.hello("w", slots: 1), inProcess: false)
        let job = Self.record(1)
        let token = try Self.started(job, in: &machine)
        _ = machine.outputStored(token, .stdout, upTo: 42)
        _ = machine.workerLeft(1, expired: false)
        machine.now = 3_000
        let back = machine.workerJoined(
            2, Self.hello("w", slots: 1, holding: [HeldAttempt(attempt: token, job: job.id)]), inProcess: false)
        #expect(back.first == .send(2, .welcome(Welcome(heartbeat: 1))), "welcome goes first")
        #expect(back.contains(.send(2, .ack(OutputAck(attempt: token, stdout: 42, stderr: 0)))))
        machine.now = 60_000
        #expect(machine.tick().isEmpty, "its attempt is bound again: no deadline")
        // An end that claims more output than was stored is a protocol problem.
        let (problem, _) = machine.ended(token, AttemptEnd(.exited(0), stdoutBytes: 50), session: 2)
        #expect(problem == "attempt \(token) ended with stdout at 42 of 50 bytes")
    }

    @Test("a worker that restarted without its attempts loses them at once")
    func restartedWorker() throws {
        var machine = Self.machine()
        _ = machine.workerJoined(1, Self.hello("w", slots: 1), inProcess: false)
        let job = Self.record(1)
        let token = try Self.started(job, in: &machine)
        _ = machine.workerLeft(1, expired: false)
        let back = machine.workerJoined(2, Self.hello("w", slots: 1), inProcess: false)
        #expect(
            back.contains(
                .finish(
                    job.id, token, fenced: true,
                    JobOutcome(state: .lost, err: "worker w restarted and no longer runs it", finishedAt: 1_000))))
    }

    @Test("cancel: a queued job is canceled in the store; one being claimed ends once stored")
    func cancelBeforeStart() throws {
        var machine = Self.machine()
        let queued = Self.record(1)
        _ = machine.submit(Self.submission(queued))
        _ = machine.queuedStored(QueuedJob(queued))
        guard case .storeCancel(queued.id, let outcome) = machine.cancel(queued.id) else {
            Issue.record("expected a store cancel")
            return
        }
        #expect(outcome.err == "canceled before it started")
        #expect(machine.queuedCancelStored(queued.id, queued) == [.announce(queued)])
        #expect(machine.queued.total == 0)

        _ = machine.workerJoined(1, Self.hello("w", slots: 1), inProcess: false)
        let job = Self.record(2)
        guard case .start(let token, _, _) = machine.submit(Self.submission(job)) else {
            throw TestFailure("expected the job to start at once")
        }
        #expect(machine.cancel(job.id) == .waitForEnd([]))
        let stored = machine.startStored(token, Self.claimed(job, token: token, worker: "w"))
        #expect(stored == [.finish(job.id, token, fenced: true, outcome)], "never sent to the worker")
        #expect(machine.cancel(JobID.random()) == .unknown)
    }

    @Test("the hub's stop reason wins over the runner's; output it could not store fails the job")
    func stopReasons() throws {
        var machine = Self.machine()
        _ = machine.workerJoined(1, Self.hello("w", slots: 2), inProcess: false)
        let job = Self.record(1)
        let token = try Self.started(job, in: &machine)
        #expect(machine.outputFailed(token, "disk full") == [.send(1, .cancel(token))])
        #expect(machine.outputTarget(token, .stdout, session: 1) == .discard)
        let (problem, actions) = machine.ended(
            token, AttemptEnd(.signaled(15), stop: .canceled, stdoutBytes: 9), session: 1)
        #expect(problem == nil)
        let outcome = try Self.finishedOutcome(actions)
        #expect(outcome.state == .failed)
        #expect(outcome.err == "the hub could not store the job's output: disk full")
        #expect(outcome.signal == 15)
    }

    @Test(
        "a worker that could not keep a job's output ends it with fewer bytes than it counted, and the job fails saying why"
    )
    func runnerLostOutput() throws {
        var machine = Self.machine()
        _ = machine.workerJoined(1, Self.hello("w", slots: 2), inProcess: false)
        let job = Self.record(1)
        let token = try Self.started(job, in: &machine)
        _ = machine.outputStored(token, .stdout, upTo: 100)
        let lost = AttemptEnd(.signaled(15), stop: .outputLost("cannot spool output: disk full"), stdoutBytes: 900)
        let (problem, actions) = machine.ended(token, lost, session: 1)
        #expect(problem == nil)
        let outcome = try Self.finishedOutcome(actions)
        #expect(outcome.state == .failed)
        #expect(outcome.err == "cannot spool output: disk full")
        // Without a reason, fewer bytes than counted is the worker's fault, and its link ends.
        let other = Self.record(2)
        let second = try Self.started(other, in: &machine)
        let (short, _) = machine.ended(second, AttemptEnd(.exited(0), stdoutBytes: 900), session: 1)
        #expect(short != nil)
    }

    @Test("input typed before a job starts waits for it and goes first, in order")
    func earlyInput() {
        var machine = Self.machine()
        let job = Self.record(1, keepsInput: true)
        _ = machine.submit(Self.submission(job))
        _ = machine.queuedStored(QueuedJob(job))
        #expect(machine.input(job.id, .bytes(Array("ab".utf8))) == .held)
        #expect(machine.input(job.id, .resize(JobTerminal(rows: 5, cols: 6))) == .held)
        let other = Self.record(2)
        _ = machine.submit(Self.submission(other))
        _ = machine.queuedStored(QueuedJob(other))
        #expect(machine.input(other.id, .bytes([1])) == .refused("the job is not running"))

        let claims = Self.claims(machine.workerJoined(1, Self.hello("w", slots: 1), inProcess: false))
        let token = claims[0].0
        let sent = machine.claimed(token, Self.claimed(job, token: token, worker: "w"))
        #expect(
            Array(sent.dropFirst())
                == [.send(1, .input(token, Array("ab".utf8))), .send(1, .resize(token, JobTerminal(rows: 5, cols: 6)))])
        #expect(machine.input(job.id, .close) == .send(1, .closeInput(token)))
    }

    @Test("recovery: attempts on the hub's own slots died with it; attempts on workers wait for them")
    func recovery() {
        var settings = SchedulerMachine.Settings()
        settings.heartbeatTimeout = 5000
        var machine = SchedulerMachine(settings: settings, tokens: .counting(from: 100))
        machine.now = 1_000
        let local = Self.claimed(Self.record(1), token: AttemptToken(1), worker: "local", state: .running)
        let retried = Self.claimed(Self.record(2, retries: 2), token: AttemptToken(2), worker: "local", state: .running)
        var remote = Self.claimed(Self.record(3), token: AttemptToken(3), worker: "w", state: .running)
        remote.stdoutBytes = 7
        let actions = machine.recover(active: [local, retried, remote], queued: QueueCounts(total: 4))
        let reason = "hub stopped while the job was running; its exit was not recorded"
        #expect(
            actions.contains(
                .finish(
                    local.id, AttemptToken(1), fenced: true, JobOutcome(state: .lost, err: reason, finishedAt: 1_000))))
        #expect(actions.contains(.requeue(retried.id, AttemptToken(2), reason: "attempt 1: \(reason)")))
        #expect(actions.contains(.loadQueue(limit: 1024)), "the queue is read from the store")
        let back = machine.workerJoined(
            1, Self.hello("w", slots: 1, holding: [HeldAttempt(attempt: AttemptToken(3), job: remote.id)]),
            inProcess: false)
        #expect(back.contains(.send(1, .ack(OutputAck(attempt: AttemptToken(3), stdout: 7, stderr: 0)))))
    }

    @Test("hellos the hub refuses: a reserved name, a bad slot count, while shutting down")
    func refusedHellos() {
        var machine = Self.machine()
        #expect(
            machine.workerJoined(1, Self.hello("local", slots: 1), inProcess: false)
                == [
                    .close(
                        1,
                        reason: "the worker name 'local' is reserved for the hub's own slots; pick another with --name")
                ])
        #expect(
            machine.workerJoined(2, Self.hello("w", slots: 5000), inProcess: false) == [
                .close(2, reason: "slots must be from 0 to 1024")
            ])
        machine.shutdown()
        #expect(
            machine.workerJoined(3, Self.hello("w", slots: 1), inProcess: false) == [
                .close(3, reason: "the hub is shutting down")
            ])
        #expect(machine.workers.isEmpty)
    }

    @Test func aWorkerNameHeldUnderOneTokenIsRefusedUnderAnotherAndReplacedUnderTheSame() {
        var machine = Self.machine()
        _ = machine.workerJoined(1, Self.hello("gpu-1", slots: 2), inProcess: false, token: "gpu-1")
        let intruder = machine.workerJoined(2, Self.hello("gpu-1", slots: 2), inProcess: false, token: "admin")
        #expect(intruder == [.close(2, reason: "a worker named 'gpu-1' is already connected under another token")])
        #expect(machine.workers[1]?.name == "gpu-1")
        #expect(machine.workers[2] == nil)
        let anonymous = machine.workerJoined(3, Self.hello("gpu-1", slots: 2), inProcess: false, token: nil)
        #expect(
            anonymous.contains(.close(3, reason: "a worker named 'gpu-1' is already connected under another token")))
        // The same worker reconnecting with its own token takes over from its old link.
        let again = machine.workerJoined(4, Self.hello("gpu-1", slots: 2), inProcess: false, token: "gpu-1")
        #expect(again.contains(.close(1, reason: "replaced by a new connection of the same worker")))
        #expect(machine.workers[1] == nil)
        #expect(machine.workers[4]?.token == "gpu-1")
    }
}
