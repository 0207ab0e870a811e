import Foundation
import Glibc
import Testing
import XNExec

/// A job's own limits (within the hub's and the worker's), `max_output`, `--max-timeout`: jobs
/// that hit a limit end with a reason while other jobs and the hub go on.
/// Serialized: jobs run as nobody, and RLIMIT_NPROC counts all of nobody's processes together.
@Suite(.timeLimit(.minutes(2)), .serialized)
struct JobLimitsTests {
    @Test func aJobMayLowerTheHubsLimitsButNotRaiseThem() async throws {
        try await withHub({
            $0.jobLimits = ResourceLimits(cpuSeconds: 30, addressSpaceBytes: 1 << 30, openFiles: 256)
            $0.maxOutputBytes = 1 << 20
        }) { hub in
            let above = try await hub.post("/v1/jobs", #"{"command":"true","limits":{"memory":2147483648}}"#)
            #expect(above.status == 400)
            #expect(
                try above.object()["error"].flatMap { ($0 as? [String: Any])?["field"] as? String } == "limits.memory")
            #expect(above.text.contains("above this hub's limit of 1073741824 (--limit-memory)"))
            let more = try await hub.post("/v1/jobs", #"{"command":"true","max_output":2097152}"#)
            #expect(more.status == 400 && more.text.contains("--max-output"))

            // A steady job goes on while the others hit their limits.
            let steady = try await hub.submit(#"{"command":"sh","args":["-c","sleep 3; echo steady"]}"#)
            let files = try await hub.submit(#"{"command":"sh","args":["-c","ulimit -n"],"limits":{"files":32}}"#)
            let filesEnd = try await hub.ended(files)
            #expect(filesEnd["stdout"] as? String == "32\n")
            #expect(filesEnd["attempts"] as? Int == 1, "a job started at once on a slot counts its attempt")
            // These slots make no cgroups: a job's own memory limit is refused, never run without.
            let hog = try await hub.submit(
                #"{"command":"python3","args":["-c","x = bytearray(512 << 20)"],"limits":{"memory":268435456}}"#)
            let hogEnd = try await hub.ended(hog)
            #expect(hogEnd["state"] as? String == "failed")
            #expect(
                hogEnd["err"] as? String
                    == "limits.memory needs a cgroup of the job's own, and this runner has none: it was given none",
                "\(hogEnd)")
            let spinner = try await hub.submit(
                #"{"command":"sh","args":["-c","while :; do :; done"],"limits":{"cpu":1}}"#)
            let spun = try await hub.ended(spinner, timeout: .seconds(30))
            #expect(spun["state"] as? String == "failed")
            #expect((spun["err"] as? String ?? "").contains("CPU time limit"), "\(spun)")
            let chatty = try await hub.submit(
                #"{"command":"sh","args":["-c","echo 0123456789abcdef"],"max_output":10}"#)
            let said = try await hub.ended(chatty)
            #expect(said["stdout"] as? String == "0123456789")
            #expect(said["stdout_truncated"] as? Bool == true)
            #expect(try await hub.ended(steady)["stdout"] as? String == "steady\n")
        }
    }

    @Test func aJobsLimitsHoldOnAWorkerWithinTheWorkersOwn() async throws {
        try await withHub({ $0.slots = 0 }) { hub in
            let worker = try TestWorker.start(hub: hub.url, name: "limited") {
                $0.jobLimits = ResourceLimits(openFiles: 100)
            }
            defer { Task { await worker.stop() } }
            let lower = try await hub.submit(#"{"command":"sh","args":["-c","ulimit -n"],"limits":{"files":20}}"#)
            #expect(try await hub.ended(lower)["stdout"] as? String == "20\n")
            // Asking the worker for more than it gives gets the worker's limit.
            let higher = try await hub.submit(#"{"command":"sh","args":["-c","ulimit -n"],"limits":{"files":500}}"#)
            #expect(try await hub.ended(higher)["stdout"] as? String == "100\n")
            let chatty = try await hub.submit(#"{"command":"sh","args":["-c","echo 0123456789abcdef"],"max_output":4}"#)
            let said = try await hub.ended(chatty)
            #expect(said["stdout"] as? String == "0123")
            #expect(said["stdout_truncated"] as? Bool == true)
        }
    }

    @Test func maxTimeoutIsEveryJobsDefaultAndItsCeiling() async throws {
        try await withHub({ $0.maxTimeout = 1 }) { hub in
            let refused = try await hub.post("/v1/jobs", #"{"command":"sleep","args":["5"],"timeout":10}"#)
            #expect(refused.status == 400)
            #expect(refused.text.contains("above this hub's --max-timeout 1s"))
            let compat = try await hub.post("/", #"{"command":"sleep","args":"5","timeout":10}"#)
            #expect(compat.status == 400)
            let sleeper = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
            let ended = try await hub.ended(sleeper)
            #expect(ended["state"] as? String == "timed_out")
            #expect(ended["timeout"] as? Double == 1)
        }
    }

    @Test func aCanceledJobLeavesNoProcessBehindEvenOneThatLeftItsSession() async throws {
        try await withHub { hub in
            let id = try await hub.submit(
                #"{"command":"sh","args":["-c","echo $XN_JOB_ID; setsid sh -c 'sleep 300; :' & sleep 300"]}"#)
            try await eventually("the job and its escaped daemon run") { () -> Bool? in
                let job = try await hub.get("/v1/jobs/\(id)").object()
                let marked = ProcessTable.members(marked: "XN_JOB_ID=\(id)")
                return job["stdout"] as? String == "\(id)\n" && marked.count >= 4 ? true : nil
            }
            #expect(try await hub.post("/v1/jobs/\(id)/cancel", "").status == 200)
            #expect(try await hub.ended(id)["state"] as? String == "canceled")
            try await eventually("no process of the job is left") {
                ProcessTable.members(marked: "XN_JOB_ID=\(id)").isEmpty ? true : nil
            }
        }
    }

    @Test(.enabled(if: geteuid() == 0, "RLIMIT_NPROC binds only a non-root job user"))
    func aForkBombStopsAtItsProcessLimitWhileAnotherJobRuns() async throws {
        // Started as root without --allow-root: jobs run as nobody.
        let hub = try await HubProcess.start(data: try temporaryFolder(), ["--kill-grace", "0.5"], asRoot: false)
        defer { hub.killNow() }
        // A bomb whose processes all stay alive: the count only grows, so once it has tried its
        // forks the count is its peak.
        let bomb = try await hub.submit(
            #"{"command":"\#(Binaries.testtask)","args":["forks","100"],"limits":{"procs":40},"timeout":30}"#)
        let steady = try await hub.submit(#"{"command":"sh","args":["-c","sleep 1; echo still serving"]}"#)
        try await eventually("the bomb tried its forks") { () -> Bool? in
            (try await hub.get("/v1/jobs/\(bomb)").object()["stdout"] as? String)?.hasPrefix("made ") == true
                ? true : nil
        }
        let peak = ProcessTable.members(marked: "XN_JOB_ID=\(bomb)").count
        #expect(peak <= 40, "\(peak) processes at once: the limit holds")
        #expect(peak > 10, "forks below the limit worked: \(peak)")
        #expect(try await hub.post("/v1/jobs/\(bomb)/cancel", "").status == 200)
        #expect(try await hub.ended(bomb)["state"] as? String == "canceled")
        // Nothing of it outlives it, and the other job ran as usual.
        try await eventually("nothing of the bomb is left") {
            ProcessTable.members(marked: "XN_JOB_ID=\(bomb)").isEmpty ? true : nil
        }
        let done = try await eventually("the other job") { () -> [String: Any]? in
            let job = try await hub.get("/v1/jobs/\(steady)").object()
            return job["state"] as? String == "succeeded" ? job : nil
        }
        #expect(done["stdout"] as? String == "still serving\n")
    }
}
