import Foundation
import Glibc
import Testing
import XNExec

/// Jobs of an `xn hub` or `xn worker` started as root run in a cgroup each: the banner says so,
/// memory is limited for the job as a whole, and what each job used is in its view.
@Suite(.timeLimit(.minutes(2)), .enabled(if: geteuid() == 0), .serialized)
struct JobCgroupTests {
    /// Writes 100 MiB in a child process, then exits.
    static let hundredMiB =
        #"{"command":"sh","args":["-c","python3 -c 'x = bytes(range(256)) * (400 * 1024)'; echo done"]}"#

    static func usage(_ job: [String: Any]) -> (cpu: Double, peak: Int)? {
        guard let usage = job["usage"] as? [String: Any], let user = usage["cpu_user_seconds"] as? Double,
            let system = usage["cpu_system_seconds"] as? Double, let peak = usage["peak_memory_bytes"] as? Int
        else { return nil }
        return (user + system, peak)
    }

    @Test func aMemoryHogIsKilledAtItsLimitAndTheHubKeepsServing() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder())
        defer { hub.killNow() }
        #expect(hub.child.stdoutText.contains("jobs run in cgroups (v1: "), "\(hub.child.stdoutText)")
        let hog = try await hub.submit(
            #"{"command":"python3","args":["-c","x = bytes(range(256)) * (4 << 20)"],"limits":{"memory":268435456}}"#)
        let ended = try await hub.ended(hog, timeout: .seconds(60))
        #expect(ended["state"] as? String == "failed")
        #expect(ended["err"] as? String == "killed: out of memory (limit 256 MiB)", "\(ended)")
        #expect(ended["signal"] as? Int == 9)
        let next = try await hub.submit(#"{"command":"echo","args":["still here"]}"#)
        #expect(try await hub.ended(next)["stdout"] as? String == "still here\n")
        let shown = try await runXN(["show", hog], hub: hub.url)
        #expect(shown.stdout.contains("err:") && shown.stdout.contains("killed: out of memory (limit 256 MiB)"))
        let limits = shown.stdout.split(separator: "\n").first { $0.hasPrefix("limits:") }
        #expect(limits?.hasSuffix(" memory 256 MiB") == true, "\(shown.stdout)")
    }

    @Test func peakMemoryAndCPUTimeAreMeasuredOnTheHubAndOnAWorker() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder())
        defer { hub.killNow() }
        let worker = try WorkerFailureTests.workerProcess(hub.url, name: "measured", ["--labels", "at=worker"])
        defer { worker.signal(SIGKILL) }
        try await eventually("worker banner") { worker.stdoutText.contains("jobs run in cgroups") ? true : nil }
        let local = try await hub.submit(JobCgroupTests.hundredMiB)
        let remote = try await hub.submit(
            #"{"command":"sh","args":["-c","python3 -c 'x = bytes(range(256)) * (400 * 1024)'; echo done"],"labels":{"at":"worker"}}"#
        )
        for id in [local, remote] {
            let job = try await hub.ended(id, timeout: .seconds(60))
            #expect(job["stdout"] as? String == "done\n")
            let usage = try #require(Self.usage(job), "\(job)")
            // The child wrote 100 MiB; the interpreter and the shell add a little.
            #expect(usage.peak >= 100 << 20 && usage.peak <= 200 << 20, "peak \(usage.peak) of \(job["worker"] ?? "?")")
            #expect(usage.cpu > 0)
        }
        let shown = try await runXN(["show", local], hub: hub.url)
        #expect(shown.stdout.contains("usage:") && shown.stdout.contains("peak memory"), "\(shown.stdout)")
    }

    @Test func withoutCgroupsCPUTimeComesFromTheKernelsAccounting() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder(), ["--no-cgroups"])
        defer { hub.killNow() }
        #expect(hub.child.stdoutText.contains("no cgroups (--no-cgroups): limits are per process"))
        let spin =
            #"{"command":"python3","args":["-c","import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"]}"#
        let job = try await hub.ended(try await hub.submit(spin), timeout: .seconds(60))
        let usage = try #require(job["usage"] as? [String: Any], "\(job)")
        let cpu = (usage["cpu_user_seconds"] as? Double ?? 0) + (usage["cpu_system_seconds"] as? Double ?? 0)
        #expect(cpu >= 0.5, "\(usage)")
        // Without a cgroup the kernel's peak would count the hub's own memory (shared until exec).
        #expect(usage["peak_memory_bytes"] == nil)
        // What only a cgroup holds is refused, with the reason, and the hub goes on.
        let bomb = try await hub.submit(#"{"command":"true","limits":{"procs":40}}"#)
        let refused = try await hub.ended(bomb)
        #expect(refused["state"] as? String == "failed")
        #expect(
            refused["err"] as? String
                == "limits.procs needs a cgroup of the job's own, and this runner has none: --no-cgroups", "\(refused)")
        let next = try await hub.submit(#"{"command":"echo","args":["on"]}"#)
        #expect(try await hub.ended(next)["stdout"] as? String == "on\n")
    }

    @Test func aCPUShareWithoutCgroupsStopsTheHubFromStarting() async throws {
        let data = try temporaryFolder()
        let hub = try ChildProcess(
            Binaries.xn, ["hub", "-p", "0", "--data", data, "--no-cgroups", "--limit-cpu-percent", "50"])
        #expect(try await hub.exitStatus() == 64)
        #expect(hub.stderrText.contains("--limit-cpu-percent needs a cgroup per job, and there is none (--no-cgroups)"))
    }

    @Test func aJobThatClearedItsEnvironmentAndLeftItsSessionDiesWithItsCancel() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder())
        defer { hub.killNow() }
        let id = try await hub.submit(
            #"{"command":"sh","args":["-c","setsid env -i sleep 300.7 & echo started; wait"]}"#)
        try await waitForProcess(["sleep", "300.7"])
        #expect(try await hub.post("/v1/jobs/\(id)/cancel", "").status == 200)
        #expect(try await hub.ended(id)["state"] as? String == "canceled")
        try await eventually("the escaped sleep is gone") {
            ProcessTable.members(running: ["sleep", "300.7"]).isEmpty ? true : nil
        }
    }
}
