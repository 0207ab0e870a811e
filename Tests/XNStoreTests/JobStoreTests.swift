import Foundation
import Testing
import XNProtocol
import XNStore

/// The store conformance suite: every `JobStore` must pass all of it.
@Suite("JobStore")
struct JobStoreTests {
    @Test("insert assigns increasing seq", arguments: StoreKind.allCases)
    func insertSeq(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            var seqs: [Int64] = []
            for _ in 0..<5 {
                let record = try await store.submit()
                seqs.append(record.seq)
                #expect(try await store.job(record.id)?.seq == record.seq)
            }
            #expect(seqs == seqs.sorted())
            #expect(Set(seqs).count == seqs.count)
            #expect(seqs[0] > 0)
        }
    }

    @Test("job(id) returns every field of the spec as submitted", arguments: StoreKind.allCases)
    func roundTrip(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let spec = JobSpec(
                command: "/usr/bin/env", args: ["a b", "", "ünï\"code\\"], env: ["A": "1", "B": "x=y", "E": ""],
                cwd: "/tmp/some dir", timeout: 1.5, stdin: "line 1\nline 2\0", name: "the name",
                callback: "https://example.com/cb?x=1")
            let id = JobID.random()
            let inserted = try await store.insert(JobRecord(id: id, spec: spec, createdAt: 1_700_000_000_123))
            let fetched = try #require(try await store.job(id))
            #expect(fetched == inserted)
            #expect(fetched.spec == spec)
            #expect(fetched.state == .queued)
            #expect(fetched.createdAt == 1_700_000_000_123)
            #expect(fetched.startedAt == nil && fetched.finishedAt == nil && fetched.exitCode == nil)
            #expect(try await store.job(JobID.random()) == nil)
        }
    }

    @Test("list is newest first, filters by state and pages back with before", arguments: StoreKind.allCases)
    func list(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            var made: [JobRecord] = []
            for state: JobState in [.queued, .running, .succeeded, .queued, .failed, .queued, .running] {
                made.append(try await store.job(in: state))
            }
            let all = try await store.all()
            #expect(all.map(\.id) == made.reversed().map(\.id))

            let queued = try await store.list(JobFilter(states: [.queued]), before: nil, limit: 10)
            #expect(queued.map(\.id) == [made[5], made[3], made[0]].map(\.id))
            let ended = try await store.list(JobFilter(states: [.succeeded, .failed]), before: nil, limit: 10)
            #expect(ended.map(\.id) == [made[4], made[2]].map(\.id))

            var pages: [[JobRecord]] = []
            var before: Int64? = nil
            while pages.count < 10 {
                let page = try await store.list(JobFilter(), before: before, limit: 3)
                if page.isEmpty { break }
                pages.append(page)
                before = page.last!.seq
            }
            #expect(pages.map(\.count) == [3, 3, 1])
            #expect(pages.flatMap { $0 }.map(\.id) == all.map(\.id))

            let olderQueued = try await store.list(JobFilter(states: [.queued]), before: made[5].seq, limit: 1)
            #expect(olderQueued.map(\.id) == [made[3].id])
        }
    }

    @Test("list keeps the jobs of an owner, with labels, or containing a text", arguments: StoreKind.allCases)
    func listFilters(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            func make(
                _ command: String, _ args: [String], labels: [String: String] = [:], owner: String?
            ) async throws
                -> JobRecord
            {
                var job = JobRecord(
                    id: .random(), spec: JobSpec(command: command, args: args, labels: labels), createdAt: 1)
                job.owner = owner
                return try await store.insert(job)
            }
            let render = try await make(
                "blender", ["scene.blend"], labels: ["gpu": "1", "zone.eu": "a", "say \"hi\"": "x"], owner: "ann")
            let backup = try await make("rsync", ["-a", "/srv", "backup:/srv"], owner: "bob")
            let other = try await make("true", [], labels: ["gpu": "2"], owner: nil)
            func ids(_ filter: JobFilter) async throws -> [JobID] {
                try await store.list(filter, before: nil, limit: 10).map(\.id)
            }
            #expect(try await ids(JobFilter(owner: "bob")) == [backup.id])
            #expect(try await ids(JobFilter(labels: ["gpu": "1"])) == [render.id])
            #expect(try await ids(JobFilter(labels: ["zone.eu": "a"])) == [render.id])
            #expect(try await ids(JobFilter(labels: ["say \"hi\"": "x"])) == [render.id])
            #expect(try await ids(JobFilter(labels: ["gpu": "1", "zone.eu": "b"])).isEmpty)
            #expect(try await ids(JobFilter(text: "backup:")) == [backup.id])
            #expect(try await ids(JobFilter(text: "blend")) == [render.id])
            #expect(try await ids(JobFilter(text: String(other.id.rawValue.prefix(12)))) == [other.id])
            #expect(try await ids(JobFilter(text: "an")) == [render.id])  // its owner
            #expect(try await ids(JobFilter(text: "BLEND")).isEmpty)
        }
    }

    @Test("queued(limit:) gives the oldest queued jobs first", arguments: StoreKind.allCases)
    func queuedOldestFirst(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let first = try await store.submit()
            _ = try await store.job(in: .running)
            let second = try await store.submit()
            _ = try await store.job(in: .canceled)
            let third = try await store.submit()
            #expect(try await store.queued(limit: 10).map(\.id) == [first.id, second.id, third.id])
            #expect(try await store.queued(limit: 2).map(\.id) == [first.id, second.id])
        }
    }

    @Test("claim moves a queued job once, and never a finished one", arguments: StoreKind.allCases)
    func claim(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let record = try await store.submit()
            let token = AttemptToken(7)
            let claimed = try #require(
                try await store.claim(record.id, worker: "w1", token: token, state: .assigned, at: 5_000))
            #expect(claimed.state == .assigned)
            #expect(claimed.startedAt == 5_000)
            #expect(claimed.worker == "w1")
            #expect(claimed.attempts == 1)
            #expect(claimed.attemptToken == token)
            #expect(try await store.job(record.id) == claimed)

            #expect(
                try await store.claim(record.id, worker: "w2", token: AttemptToken(8), state: .running, at: 6_000)
                    == nil)
            #expect(try await store.job(record.id) == claimed)

            let canceled = try await store.job(in: .canceled)
            #expect(try await store.claim(canceled.id, worker: "w1", token: token, state: .running, at: 7_000) == nil)
            #expect(try await store.job(canceled.id)?.state == .canceled)
            #expect(
                try await store.claim(JobID.random(), worker: "w1", token: token, state: .running, at: 7_000) == nil)
            await #expect(throws: (any Error).self) {
                _ = try await store.claim(record.id, worker: "w1", token: token, state: .succeeded, at: 7_000)
            }
        }
    }

    @Test("markStarted, requeue and finish act only for the attempt's own token", arguments: StoreKind.allCases)
    func fencing(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let record = try await store.submit()
            let first = AttemptToken(1)
            _ = try await store.claim(record.id, worker: "w1", token: first, state: .assigned, at: 5_000)
            #expect(try await !store.markStarted(record.id, token: AttemptToken(2)))
            #expect(try await store.markStarted(record.id, token: first))
            #expect(try await store.job(record.id)?.state == .running)
            try await store.appendOutput(record.id, stream: .stdout, offset: 0, bytes: Array("partial".utf8))

            #expect(try await !store.requeue(record.id, token: AttemptToken(2), reason: "nope"))
            #expect(try await store.requeue(record.id, token: first, reason: "attempt 1: worker w1 lost"))
            let requeued = try #require(try await store.job(record.id))
            #expect(requeued.state == .queued)
            #expect(requeued.err == "attempt 1: worker w1 lost")
            #expect(requeued.attemptToken == nil)
            #expect(requeued.stdoutBytes == 0)
            #expect(try await store.everything(record.id, .stdout).isEmpty)
            #expect(try await store.queued(limit: 10).map(\.id) == [record.id])

            let second = AttemptToken(3)
            let again = try #require(
                try await store.claim(record.id, worker: "w2", token: second, state: .running, at: 8_000))
            #expect(again.attempts == 2)
            let late = JobOutcome(state: .succeeded, exitCode: 0, finishedAt: 9_000)
            #expect(try await store.finish(record.id, late, token: first) == nil)
            #expect(try await store.finish(record.id, late, token: second)?.state == .succeeded)
        }
    }

    @Test("the store refuses every move JobState does not allow", arguments: StoreKind.allCases)
    func illegalMoves(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            for state in JobState.allCases where state.isTerminal {
                await #expect(throws: (any Error).self) { _ = try await store.submit(state: state) }
            }
            for from in JobState.allCases {
                for to in JobState.allCases where to.isTerminal && !from.canMove(to: to) {
                    let record = try await store.job(in: from)
                    let outcome = JobOutcome(state: to, finishedAt: 50_000)
                    #expect(try await store.finish(record.id, outcome) == nil, "\(from) -> \(to)")
                    #expect(try await store.job(record.id) == record, "\(from) -> \(to)")
                }
                // Only a queued job may be claimed; only an assigned or running one requeued.
                let record = try await store.job(in: from)
                let token = AttemptToken(99)
                let claimed = try await store.claim(record.id, worker: "w", token: token, state: .running, at: 1)
                #expect((claimed != nil) == (from == .queued), "claim from \(from)")
                if from != .queued {
                    #expect(try await !store.requeue(record.id, token: token, reason: "x"), "requeue from \(from)")
                }
            }
        }
    }

    @Test("the first finish wins; a second changes nothing", arguments: StoreKind.allCases)
    func finishFirstWins(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let record = try await store.job(in: .running)
            let outcome = JobOutcome(
                state: .timedOut, signal: 9, err: "timed out after 1s", stdoutTruncated: true, finishedAt: 9_000)
            let finished = try #require(try await store.finish(record.id, outcome))
            #expect(finished.state == .timedOut)
            #expect(finished.exitCode == nil)
            #expect(finished.signal == 9)
            #expect(finished.err == "timed out after 1s")
            #expect(finished.stdoutTruncated && !finished.stderrTruncated)
            #expect(finished.finishedAt == 9_000)
            #expect(finished.startedAt == record.startedAt)
            #expect(try await store.job(record.id) == finished)

            let late = JobOutcome(state: .succeeded, exitCode: 0, finishedAt: 10_000)
            #expect(try await store.finish(record.id, late) == nil)
            #expect(try await store.job(record.id) == finished)
            #expect(try await store.finish(JobID.random(), late) == nil)
        }
    }

    @Test(
        "the end of a job stored running, or claimed again after a requeue, returns the job as read back, spec and all",
        arguments: StoreKind.allCases)
    func endReturnsTheWholeJob(kind: StoreKind) async throws {
        try await withStore(kind) { store, directory in
            let spec = JobSpec(
                command: "/bin/sh", args: ["-c", "exit 3"], env: ["K": "v w"], stdin: "in\0put", name: "n",
                labels: ["os": "linux"])
            var job = JobRecord(id: JobID.random(), spec: spec, createdAt: 2_000)
            job.state = .running
            job.startedAt = 2_000
            job.worker = "local"
            job.attempts = 1
            job.attemptToken = AttemptToken(1)
            _ = try await store.insert(job)
            let outcome = JobOutcome(state: .failed, exitCode: 3, finishedAt: 2_500)
            let ended = try #require(try await store.finish(job.id, outcome, token: AttemptToken(1)))
            #expect(ended.spec == spec)
            #expect(ended.exitCode == 3 && ended.attempts == 1 && ended.worker == "local")
            #expect(try await store.job(job.id) == ended)

            var again = JobRecord(id: JobID.random(), spec: spec, createdAt: 3_000)
            again.state = .running
            again.startedAt = 3_000
            again.attempts = 1
            again.attemptToken = AttemptToken(2)
            _ = try await store.insert(again)
            #expect(try await store.requeue(again.id, token: AttemptToken(2), reason: "worker lost"))
            _ = try #require(
                try await store.claim(again.id, worker: "w2", token: AttemptToken(3), state: .running, at: 3_100))
            let second = try #require(try await store.finish(again.id, outcome, token: AttemptToken(3)))
            #expect(second.spec == spec && second.attempts == 2 && second.worker == "w2")
            #expect(try await store.job(again.id) == second)
            // A store opened again (a restarted hub) has no spec in memory and reads it from the row.
            if kind.persists {
                var third = JobRecord(id: JobID.random(), spec: spec, createdAt: 4_000)
                third.state = .running
                third.attemptToken = AttemptToken(4)
                _ = try await store.insert(third)
                let reopened = try kind.open(in: directory)
                let late = try #require(try await reopened.finish(third.id, outcome, token: AttemptToken(4)))
                #expect(late.spec == spec)
                #expect(try await reopened.job(third.id) == late)
            }
        }
    }

    @Test("output is stored byte-exact and read back from any offset", arguments: StoreKind.allCases)
    func output(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let record = try await store.job(in: .running)
            let stdout = generatedBytes(count: 200_000, seed: 7)
            let stderr = generatedBytes(count: 5_000, seed: 8)
            var offset = 0
            for size in [1, 4_095, 65_536, 3, 100_000, 30_365] {
                try await store.appendOutput(
                    record.id, stream: .stdout, offset: offset, bytes: Array(stdout[offset..<offset + size]))
                offset += size
            }
            #expect(offset == stdout.count)
            try await store.appendOutput(record.id, stream: .stderr, offset: 0, bytes: Array(stderr[..<2_500]))
            try await store.appendOutput(record.id, stream: .stderr, offset: 2_500, bytes: Array(stderr[2_500...]))

            #expect(try await store.everything(record.id, .stdout) == stdout)
            #expect(try await store.everything(record.id, .stderr) == stderr)
            let windows = [(0, 1), (1, 1), (2_000, 100_000), (4_096, 65_536), (69_633, 3), (150_000, 1_000_000)]
            for (from, limit) in windows {
                let got = try await store.output(record.id, stream: .stdout, from: from, limit: limit)
                #expect(got == Array(stdout[from..<min(stdout.count, from + limit)]), "from \(from) limit \(limit)")
            }
            #expect(try await store.output(record.id, stream: .stdout, from: stdout.count, limit: 10) == [])
            #expect(try await store.output(record.id, stream: .stdout, from: 10, limit: 0) == [])

            let stored = try #require(try await store.job(record.id))
            #expect(stored.stdoutBytes == stdout.count)
            #expect(stored.stderrBytes == stderr.count)
            #expect(try await store.everything(JobID.random(), .stdout) == [])
        }
    }

    @Test("activeJobs lists assigned and running jobs only", arguments: StoreKind.allCases)
    func activeJobs(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            _ = try await store.job(in: .queued)
            let assigned = try await store.submit(state: .assigned)
            let running = try await store.job(in: .running)
            _ = try await store.job(in: .succeeded)
            _ = try await store.job(in: .canceled)
            #expect(try await store.activeJobs().map(\.id) == [assigned.id, running.id])
        }
    }

    @Test("purgeFinished deletes the oldest finished jobs and their output only", arguments: StoreKind.allCases)
    func purge(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            // The unfinished jobs are the oldest, so a purge that ignored state would take them first.
            let queued = try await store.job(in: .queued)
            let running = try await store.job(in: .running)
            var finished: [JobRecord] = []
            for state: JobState in [.succeeded, .failed, .lost, .succeeded] {
                let record = try await store.job(in: state)
                let bytes = Array("out \(record.seq)".utf8)
                try await store.appendOutput(record.id, stream: .stdout, offset: 0, bytes: bytes)
                finished.append(record)
            }

            #expect(try await store.purgeFinished(keeping: 2) == 2)
            for gone in finished[..<2] {
                #expect(try await store.job(gone.id) == nil)
                #expect(try await store.everything(gone.id, .stdout) == [])
            }
            for kept in finished[2...] {
                #expect(try await store.job(kept.id) != nil)
                #expect(try await store.everything(kept.id, .stdout) == Array("out \(kept.seq)".utf8))
            }

            #expect(try await store.purgeFinished(keeping: 2) == 0)
            #expect(try await store.purgeFinished(keeping: 0) == 2)
            #expect(try await store.all().map(\.id) == [running.id, queued.id])
        }
    }

    @Test("count", arguments: StoreKind.allCases)
    func count(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            _ = try await store.job(in: .queued)
            _ = try await store.job(in: .queued)
            _ = try await store.job(in: .succeeded)
            #expect(try await store.count(state: .queued) == 2)
            #expect(try await store.count(state: .succeeded) == 1)
            #expect(try await store.count(state: .running) == 0)
            #expect(try await store.count(state: nil) == 3)
        }
    }

    @Test("a callback is pending from submission until delivered or given up", arguments: StoreKind.allCases)
    func callbackDeliveryLog(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            func withCallback() async throws -> JobRecord {
                var spec = JobSpec(command: "true")
                spec.callback = "http://127.0.0.1:9/done"
                return try await store.insert(JobRecord(id: .random(), spec: spec, createdAt: 1_000))
            }
            let waiting = try await withCallback()
            #expect(waiting.callbackDelivery == CallbackDelivery(state: .pending, attempts: 0))
            let ended = try await withCallback()
            _ = try await store.claim(ended.id, worker: "local", token: .random(), state: .running, at: 1_001)
            _ = try await store.finish(ended.id, JobOutcome(state: .succeeded, exitCode: 0, finishedAt: 1_002))
            let plain = try await store.job(in: .succeeded)
            #expect(plain.callbackDelivery == nil, "no callback, no log")
            // Only ended jobs are delivered; a queued job's callback waits for its end.
            #expect(try await store.pendingCallbacks().map(\.id) == [ended.id])
            let retrying = CallbackDelivery(
                state: .pending, attempts: 1, lastResult: "connection refused", lastAttemptAt: 2_000,
                nextAttemptAt: 3_000)
            try await store.recordCallback(ended.id, retrying, status: nil)
            #expect(try await store.job(ended.id)?.callbackDelivery == retrying)
            #expect(try await store.pendingCallbacks().map(\.id) == [ended.id])
            let delivered = CallbackDelivery(
                state: .delivered, attempts: 2, lastResult: "HTTP 200", lastAttemptAt: 3_000)
            try await store.recordCallback(ended.id, delivered, status: "delivered: HTTP 200 on attempt 2")
            let done = try await store.job(ended.id)
            #expect(done?.callbackDelivery == delivered)
            #expect(done?.callbackStatus == "delivered: HTTP 200 on attempt 2")
            #expect(try await store.pendingCallbacks().isEmpty)
        }
    }

    @Test("a store opened again at the same place has every job", arguments: StoreKind.allCases.filter(\.persists))
    func persistence(kind: StoreKind) async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bytes = generatedBytes(count: 10_000, seed: 3)
        var before: [JobRecord] = []
        var ids: [JobID] = []
        do {
            // The first store is released at the end of this scope, as when a hub stops.
            let store = try kind.open(in: directory)
            ids.append(try await store.submit("first", at: 1).id)
            ids.append(try await store.job(in: .running, at: 2).id)
            ids.append(try await store.job(in: .failed, at: 3).id)
            try await store.appendOutput(ids[2], stream: .stderr, offset: 0, bytes: bytes)
            try await store.recordCallback(
                ids[2], CallbackDelivery(state: .failed, attempts: 3, lastResult: "refused"), status: "failed: refused")
            before = try await store.all()
        }

        let reopened = try kind.open(in: directory)
        #expect(before.count == 3)
        #expect(try await reopened.all() == before)
        #expect(try await reopened.everything(ids[2], .stderr) == bytes)
        #expect(try await reopened.queued(limit: 10).map(\.id) == [ids[0]])
        #expect(try await reopened.job(ids[1])?.state == .running)
        let next = try await reopened.submit()
        #expect(next.seq > before.map(\.seq).max()!)
    }
}
