import Foundation
import Glibc
import Testing

/// Workers and hubs that die, stall, or are stopped: no job stuck, none reported twice.
@Suite(.timeLimit(.minutes(3)))
struct WorkerFailureTests {
    static func workerProcess(
        _ hub: String, name: String, _ extra: [String] = [], asRoot: Bool = true
    ) throws
        -> ChildProcess
    {
        let user = asRoot && geteuid() == 0 ? ["--allow-root"] : []
        return try ChildProcess(
            Binaries.xn,
            ["worker", "--hub", hub, "--name", name, "--slots", "2", "--log-level", "warning"] + user + extra)
    }

    @Test func aKilledWorkersJobIsLostThenRetriedElsewhere() async throws {
        try await withHub({
            $0.slots = 0; $0.heartbeatTimeout = .seconds(2)
        }) { hub in
            let marker = "xn-kill9-\(UUID().uuidString)"
            let flag = try temporaryFolder() + "/first-attempt"
            defer { killStragglers(marker) }
            let doomed = try Self.workerProcess(hub.url, name: "doomed")
            defer { doomed.signal(SIGKILL) }
            try await hub.waitForWorkers(["doomed"])
            let once = try await hub.submit(#"{"command":"\#(Binaries.testtask)","args":["sleep","60","\#(marker)"]}"#)
            // The first attempt blocks (until the worker dies); the retry finds the flag and ends.
            let script =
                "echo attempt; if [ ! -e \(flag) ]; then touch \(flag); exec \(Binaries.testtask) sleep 60 \(marker); fi"
            let retried = try await hub.submit(#"{"command":"sh","args":["-c","\#(script)"],"retries":1}"#)
            try await eventually("both running on doomed", timeout: .seconds(30)) {
                let states = (try await hub.state(once), try await hub.state(retried))
                return states == ("running", "running") ? true : nil
            }
            doomed.signal(SIGKILL)
            let lost = try await hub.ended(once, timeout: .seconds(20))
            #expect(lost["state"] as? String == "lost")
            #expect((lost["err"] as? String)?.contains("worker doomed lost") == true)
            #expect(try await hub.state(retried) == "queued")
            let rescuer = try TestWorker.start(hub: hub.url, name: "rescuer")
            let done = try await hub.ended(retried)
            #expect(done["state"] as? String == "succeeded")
            #expect(done["worker"] as? String == "rescuer")
            #expect(done["attempts"] as? Int == 2)
            #expect(done["stdout"] as? String == "attempt\n")
            await rescuer.stop()
        }
    }

    @Test func aWorkerDeclaredLostCannotReportLaterAndIsToldToKill() async throws {
        try await withHub({
            $0.slots = 0; $0.heartbeatTimeout = .seconds(2)
        }) { hub in
            let folder = try temporaryFolder()
            let stalled = try Self.workerProcess(hub.url, name: "stalled")
            defer { stalled.signal(SIGKILL) }
            try await hub.waitForWorkers(["stalled"])
            let id = try await hub.submit(
                #"{"command":"\#(Binaries.testtask)","args":["spawn-child","\#(folder)/pids"]}"#)
            let pids = try await eventually("pids") { try? readPids(folder + "/pids") }
            stalled.signal(SIGSTOP)
            let lost = try await hub.ended(id, timeout: .seconds(20))
            #expect(lost["state"] as? String == "lost")
            stalled.signal(SIGCONT)
            // Back from the dead, it reconnects; the hub tells it to kill the attempt it moved past.
            try await eventually("the stale attempt killed", timeout: .seconds(15)) {
                pids.allSatisfy(processIsGone) ? true : nil
            }
            let after = try await hub.get("/v1/jobs/\(id)").object()
            #expect(after["state"] as? String == "lost")
            #expect(after["exit_code"] == nil)
        }
    }

    @Test func aHubKilledMidJobFindsTheJobsCompleteWithFullOutputAfterRestart() async throws {
        let data = try temporaryFolder()
        let first = try await HubProcess.start(data: data, ["--no-local", "--heartbeat-timeout", "2"])
        defer { first.killNow() }
        let worker = try Self.workerProcess(first.url, name: "steady")
        defer { worker.signal(SIGKILL) }
        try await eventually("worker connected") { () -> Bool? in
            let list = try await first.get("/v1/workers").object()["workers"] as? [[String: Any]]
            return list?.isEmpty == false ? true : nil
        }
        let task = Binaries.testtask
        let id = try await first.submit(
            #"{"command":"sh","args":["-c","\#(task) bytes 300000 1; sleep 2; \#(task) bytes 300000 2; exit 7"]}"#)
        try await eventually("first half stored") { () -> Bool? in
            let job = try await first.get("/v1/jobs/\(id)").object()
            return job["stdout_bytes"] as? Int == 300_000 ? true : nil
        }
        first.child.signal(SIGKILL)
        _ = try await first.child.exitStatus()
        // The worker keeps the job running and its output spooled while the hub is away.
        try await Task.sleep(for: .seconds(2.5))
        let port = URL(string: first.url)!.port!
        let second = try await HubProcess.start(
            data: data, ["--no-local", "--heartbeat-timeout", "2", "-p", String(port)])
        defer { second.killNow() }
        let job = try await eventually("job ended after the restart", timeout: .seconds(30)) { () -> [String: Any]? in
            let job = try await second.get("/v1/jobs/\(id)").object()
            return ["running", "assigned"].contains(job["state"] as? String ?? "") ? nil : job
        }
        #expect(job["state"] as? String == "failed")
        #expect(job["exit_code"] as? Int == 7)
        let raw = try await second.get("/v1/jobs/\(id)/stdout")
        #expect(raw.body == generatedBytes(count: 300_000, seed: 1) + generatedBytes(count: 300_000, seed: 2))
        worker.signal(SIGTERM)
        #expect(try await worker.exitStatus(timeout: .seconds(20)) == 0)
    }

    /// 200 MB through a hub that is killed and restarted mid-stream: every byte arrives once, in
    /// order, and neither side holds the stream in memory (acknowledged window, bounded hand-off).
    @Test func aLargeStreamSurvivesAForcedReconnectByteForByteInBoundedMemory() async throws {
        let data = try temporaryFolder()
        let count = 200_000_000
        let options = ["--no-local", "--heartbeat-timeout", "3", "--max-output", String(count)]
        let first = try await HubProcess.start(data: data, options)
        defer { first.killNow() }
        let worker = try Self.workerProcess(first.url, name: "bulk")
        defer { worker.signal(SIGKILL) }
        try await eventually("worker connected") { () -> Bool? in
            let list = try await first.get("/v1/workers").object()["workers"] as? [[String: Any]]
            return list?.isEmpty == false ? true : nil
        }
        let id = try await first.submit(#"{"command":"\#(Binaries.testtask)","args":["bytes","\#(count)","5"]}"#)
        try await eventually("a part stored", timeout: .seconds(60)) { () -> Bool? in
            let job = try await first.get("/v1/jobs/\(id)").object()
            return (job["stdout_bytes"] as? Int ?? 0) >= 16_000_000 ? true : nil
        }
        first.child.signal(SIGKILL)
        _ = try await first.child.exitStatus()
        let port = URL(string: first.url)!.port!
        let second = try await HubProcess.start(data: data, options + ["-p", String(port)])
        defer { second.killNow() }
        let job = try await eventually("job ended after the restart", timeout: .seconds(150)) { () -> [String: Any]? in
            let job = try await second.get("/v1/jobs/\(id)").object()
            return ["running", "assigned"].contains(job["state"] as? String ?? "") ? nil : job
        }
        #expect(job["state"] as? String == "succeeded")
        #expect(job["stdout_bytes"] as? Int == count)
        // Peak memory while it streamed, before the download below.
        let hubPeak = try peakResidentMiB(second.child.process.processIdentifier)
        let workerPeak = try peakResidentMiB(worker.process.processIdentifier)
        #expect(hubPeak < 160, "hub peaked at \(hubPeak) MiB while storing \(count / 1_000_000) MB")
        #expect(workerPeak < 160, "worker peaked at \(workerPeak) MiB while streaming \(count / 1_000_000) MB")
        var stored: [UInt8] = []
        stored.reserveCapacity(count)
        let piece = 50_000_000
        for offset in stride(from: 0, to: count, by: piece) {
            stored += try await second.get("/v1/jobs/\(id)/stdout?offset=\(offset)&limit=\(piece)").body
        }
        #expect(stored.count == count)
        #expect(
            sameBytes(stored, generatedBytes(count: count, seed: 5)), "stored output differs from what the job wrote")
        worker.signal(SIGTERM)
        #expect(try await worker.exitStatus(timeout: .seconds(20)) == 0)
    }

    @Test func sigtermDrainsTheWorkerAfterItsRunningJobs() async throws {
        try await withHub({ $0.slots = 0 }) { hub in
            let worker = try Self.workerProcess(hub.url, name: "drained")
            defer { worker.signal(SIGKILL) }
            try await hub.waitForWorkers(["drained"])
            let id = try await hub.submit(#"{"command":"sh","args":["-c","sleep 1; echo finished"]}"#)
            try await eventually("running") { try await hub.state(id) == "running" ? true : nil }
            worker.signal(SIGTERM)
            // Draining: it takes nothing new.
            try await eventually("draining shown") { () -> Bool? in
                let list = try await hub.get("/v1/workers").object()["workers"] as? [[String: Any]]
                return list?.first?["draining"] as? Bool == true ? true : nil
            }
            let later = try await hub.submit(#"{"command":"echo","args":["later"]}"#)
            let job = try await hub.ended(id)
            #expect(job["state"] as? String == "succeeded")
            #expect(job["stdout"] as? String == "finished\n")
            #expect(try await worker.exitStatus(timeout: .seconds(20)) == 0)
            #expect(try await hub.state(later) == "queued")
        }
    }
}

/// A process's peak resident memory (VmHWM) in MiB.
func peakResidentMiB(_ pid: Int32) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
    else { throw TestFailure("no VmHWM for process \(pid)") }
    return kilobytes / 1024
}

/// Byte equality without a per-element loop (debug builds compare 200 MB arrays slowly).
func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    a.count == b.count
        && a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } }
}
