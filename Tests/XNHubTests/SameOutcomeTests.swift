import Foundation
import Glibc
import Testing
import XNStore

/// The hub's own slots and a remote worker run jobs through one engine: the same scenario ends
/// the same way on both (state, err, exit code, signal, output), as a user sees it.
@Suite(.timeLimit(.minutes(4)))
struct SameOutcomeTests {
    /// Where a job runs: one slot of the hub's own, or the one slot of a worker.
    enum Runner: String, CaseIterable, Sendable {
        case hub, worker
    }

    /// What a user sees of a job's end. `err` names the runner ("hub", "worker w"); it is written
    /// as "RUNNER" here so both compare.
    struct End: Equatable, CustomStringConvertible {
        var state: String?
        var err: String?
        var exitCode: Int?
        var signal: Int?
        var stdout: String?
        var stderr: String?

        init(_ view: [String: Any]) {
            state = view["state"] as? String
            err = (view["err"] as? String)?.replacingOccurrences(of: "worker w ", with: "RUNNER ")
                .replacingOccurrences(of: "hub shut", with: "RUNNER shut")
            exitCode = view["exit_code"] as? Int
            signal = view["signal"] as? Int
            stdout = view["stdout"] as? String
            stderr = view["stderr"] as? String
        }

        init(
            state: String, err: String? = nil, exitCode: Int? = nil, signal: Int? = nil, stdout: String = "",
            stderr: String = ""
        ) {
            self.state = state
            self.err = err
            self.exitCode = exitCode
            self.signal = signal
            self.stdout = stdout
            self.stderr = stderr
        }

        var description: String {
            "\(state ?? "?") err=\(err ?? "-") exit=\(exitCode.map(String.init) ?? "-") signal=\(signal.map(String.init) ?? "-") "
                + "stdout=\(stdout.debugDescription) stderr=\(stderr.debugDescription)"
        }
    }

    /// Runs `body` with a hub whose one slot is `runner`'s.
    static func with(
        _ runner: Runner, _ configure: (inout TestHubSetup) -> Void = { _ in },
        _ body: (TestHub) async throws -> Void
    ) async throws {
        try await withHub({
            $0.slots = runner == .hub ? 1 : 0
            $0.killGrace = .milliseconds(500)
            configure(&$0)
        }) { hub in
            guard runner == .worker else { return try await body(hub) }
            let worker = try TestWorker.start(hub: hub.url, name: "w", slots: 1)
            do {
                try await hub.waitForWorkers(["w"])
                try await body(hub)
            } catch {
                await worker.stop()
                throw error
            }
            await worker.stop()
        }
    }

    /// The end of the job `scenario` submits, on each runner.
    static func ends(_ scenario: @escaping (TestHub) async throws -> String) async throws -> [Runner: End] {
        var ends: [Runner: End] = [:]
        for runner in Runner.allCases {
            try await with(runner) { hub in
                let id = try await scenario(hub)
                ends[runner] = End(try await hub.ended(id))
            }
        }
        return ends
    }

    static func expectSame(_ ends: [Runner: End], _ expected: End, sourceLocation: SourceLocation = #_sourceLocation) {
        for runner in Runner.allCases {
            #expect(ends[runner] == expected, "on the \(runner.rawValue)", sourceLocation: sourceLocation)
        }
    }

    @Test func exitCodeAndOutput() async throws {
        let ends = try await Self.ends { hub in
            try await hub.submit(#"{"command":"sh","args":["-c","echo out; echo err >&2; exit 3"]}"#)
        }
        Self.expectSame(ends, End(state: "failed", exitCode: 3, stdout: "out\n", stderr: "err\n"))
    }

    @Test func spawnFailure() async throws {
        let ends = try await Self.ends { hub in try await hub.submit(#"{"command":"/nonexistent/xn-nothing"}"#) }
        Self.expectSame(
            ends, End(state: "failed", err: "spawn /nonexistent/xn-nothing ENOENT: No such file or directory"))
    }

    @Test func timeout() async throws {
        let ends = try await Self.ends { hub in
            try await hub.submit(#"{"command":"sh","args":["-c","echo started; exec sleep 30"],"timeout":0.5}"#)
        }
        Self.expectSame(ends, End(state: "timed_out", err: "timed out after 0.5s", signal: 15, stdout: "started\n"))
    }

    @Test func killedBySignal() async throws {
        let ends = try await Self.ends { hub in
            let id = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
            try await eventually("running") { try await hub.state(id) == "running" ? true : nil }
            let sent = try await hub.post("/v1/jobs/\(id)/signal", #"{"signal":"KILL"}"#)
            guard sent.status == 202 else { throw TestFailure("signal: \(sent.status) \(sent.text)") }
            return id
        }
        Self.expectSame(ends, End(state: "failed", err: "killed by SIGKILL (signal 9)", signal: 9))
    }

    @Test func cancelBeforeTheStartAndWhileRunning() async throws {
        var blockers: [Runner: End] = [:]
        var victims: [Runner: End] = [:]
        for runner in Runner.allCases {
            try await Self.with(runner) { hub in
                let blocker = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
                try await eventually("running") { try await hub.state(blocker) == "running" ? true : nil }
                let victim = try await hub.submit(#"{"command":"echo","args":["never"]}"#)
                #expect(try await hub.state(victim) == "queued")
                #expect(try await hub.post("/v1/jobs/\(victim)/cancel", "").status == 200)
                #expect(try await hub.post("/v1/jobs/\(blocker)/cancel", "").status == 200)
                victims[runner] = End(try await hub.ended(victim))
                blockers[runner] = End(try await hub.ended(blocker))
            }
        }
        Self.expectSame(victims, End(state: "canceled", err: "canceled before it started"))
        Self.expectSame(blockers, End(state: "canceled", err: "canceled", signal: 15))
    }

    @Test func drainDuringAJob() async throws {
        var ends: [Runner: End] = [:]
        // The hub's own slots drain when the hub shuts down (Ctrl-C); the next start shows the end.
        let data = try temporaryFolder()
        let first = try await HubProcess.start(data: data, ["--slots", "1", "--grace", "0.3", "--kill-grace", "0.5"])
        defer { first.killNow() }
        let id = try await first.submit(#"{"command":"sh","args":["-c","echo begun; exec sleep 30"]}"#)
        try await eventually("running") { try await first.state(id) == "running" ? true : nil }
        first.child.signal(SIGINT)
        #expect(try await first.child.exitStatus(timeout: .seconds(15)) == 0)
        let again = try await HubProcess.start(data: data, ["--no-local"])
        defer { again.killNow() }
        ends[.hub] = End(try await again.get("/v1/jobs/\(id)").object())
        await again.kill()
        // A worker drains on SIGTERM (here: stop()).
        try await withHub({ $0.slots = 0 }) { hub in
            let worker = try TestWorker.start(hub: hub.url, name: "w", slots: 1) {
                $0.drainGrace = .milliseconds(300)
            }
            try await hub.waitForWorkers(["w"])
            let id = try await hub.submit(#"{"command":"sh","args":["-c","echo begun; exec sleep 30"]}"#)
            try await eventually("running") { try await hub.state(id) == "running" ? true : nil }
            await worker.stop()
            ends[.worker] = End(try await hub.ended(id))
        }
        Self.expectSame(
            ends,
            End(
                state: "lost", err: "RUNNER shut down before the job finished; it was killed after the grace period",
                signal: 15, stdout: "begun\n"))
    }

    @Test(arguments: Runner.allCases)
    func outputTheHubCannotStoreFailsTheJobWithWhy(runner: Runner) async throws {
        let store = try FailingStore()
        store.failingAppends.store(.max, ordering: .relaxed)
        try await Self.with(runner, { $0.store = store }) { hub in
            let id = try await hub.submit(#"{"command":"sh","args":["-c","echo doomed; exec sleep 30"]}"#)
            let end = End(try await hub.ended(id, timeout: .seconds(30)))
            #expect(end.state == "failed")
            #expect(end.err == "the hub could not store the job's output: disk I/O error (injected)", "\(end)")
            #expect(end.signal == 15, "the job was stopped, not left running")
            // The hub goes on: the next job runs and keeps its output.
            store.failingAppends.store(0, ordering: .relaxed)
            let next = try await hub.submit(#"{"command":"echo","args":["fine"]}"#)
            #expect(End(try await hub.ended(next)).stdout == "fine\n")
        }
    }

    @Test(arguments: Runner.allCases)
    func anEndTheStoreRefusesAtFirstIsStoredLaterAndOnlyThenAnnounced(runner: Runner) async throws {
        let store = try FailingStore()
        try await Self.with(runner, { $0.store = store }) { hub in
            store.failingFinishes.store(2, ordering: .relaxed)
            let result = try await hub.post("/v1/jobs?wait=20", #"{"command":"echo","args":["kept"]}"#)
            let view = try result.object()
            // The waiter hears of the end only once it is stored, after two failed writes.
            #expect(view["state"] as? String == "succeeded")
            #expect(view["stdout"] as? String == "kept\n")
            #expect(store.failingFinishes.load(ordering: .relaxed) == 0)
            #expect(store.finishCalls.load(ordering: .relaxed) == 3)
        }
    }
}
