import Foundation
import Glibc
import Testing
import XNExec
import XNProtocol

/// A control group per job: everything the job starts ends with it, limits hold for the job as a
/// whole, and what it used is measured. Needs root (CI runs as root).
@Suite("JobExecutor: cgroups", .timeLimit(.minutes(1)), .enabled(if: geteuid() == 0), .serialized)
struct ExecutorCgroupTests {
    static let nobody = ProcessIdentity.user(named: "nobody")!

    static func executor() throws -> PipeExecutor {
        PipeExecutor(cgroups: try CgroupHost.discover().get())
    }

    @Test("a process that left the job's group and session and cleared its environment dies with the job")
    func escapedProcessDies() async throws {
        let executor = try Self.executor()
        let script = "setsid env -i sleep 300.5 & echo started; wait"
        let process = try executor.start(ProcessRequest(command: "sh", arguments: ["-c", script]))
        let output = OutputCollector(process)
        #expect(await eventually { !ProcessTable.members(running: ["sleep", "300.5"]).isEmpty })
        let escaped = ProcessTable.members(running: ["sleep", "300.5"])
        // Nothing marks it any more: no group, no session, no XN_JOB_ID.
        for pid in escaped {
            let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") ?? Data()
            #expect(environment.isEmpty, "env -i left it no environment")
        }
        _ = await process.terminate(grace: .milliseconds(200))
        #expect(await eventually { ProcessTable.members(running: ["sleep", "300.5"]).isEmpty }, "the cgroup took it")
        #expect(output.text(.stdout) == "started\n")
    }

    @Test("a job's process limit is its own: another job of the same user still starts")
    func processLimitPerJob() async throws {
        let executor = try Self.executor()
        // Tries 100 children that stay alive and says how many started.
        var bomb = TestTask.request("forks", "100")
        bomb.identity = Self.nobody
        bomb.limits = ResourceLimits(processes: 40)
        let bombing = try executor.start(bomb)
        let output = OutputCollector(bombing)
        #expect(await eventually(timeout: .seconds(20)) { output.text(.stdout).hasPrefix("made ") })
        let made = Int(output.text(.stdout).split(separator: " ").last?.trimmingCharacters(in: .newlines) ?? "")
        // The main process and 39 children: the 41st fails, whatever else nobody runs.
        #expect(made == 39, "\(output.text(.stdout))")
        // A second job of the same user, with the same limit, starts and forks as usual.
        var other = ProcessRequest(command: "sh", arguments: ["-c", "id -u; (echo forked) | cat"])
        other.identity = Self.nobody
        other.limits = ResourceLimits(processes: 40)
        let finished = try await run(executor, other)
        #expect(finished.result.termination == .exited(0))
        #expect(finished.stdout == "65534\nforked\n")
        _ = await bombing.terminate(grace: .milliseconds(200))
        #expect(await eventually { ProcessTable.members(running: ["xn-testtask", "sleep", "301"]).isEmpty })
    }

    @Test("a memory hog is killed at its job's memory limit, and says so")
    func memoryLimit() async throws {
        let executor = try Self.executor()
        var hog = ProcessRequest(
            command: "python3", arguments: ["-c", "x = bytes(range(256)) * (4 * 1024 * 1024); print(len(x))"])
        hog.limits = ResourceLimits(addressSpaceBytes: 256 << 20)
        let finished = try await run(executor, hog)
        #expect(finished.result.termination == .signaled(SIGKILL))
        #expect(finished.result.usage?.outOfMemory == true)
        #expect(finished.stdout.isEmpty)
    }

    @Test("CPU time and peak memory of all the job's processes are measured")
    func usage() async throws {
        let executor = try Self.executor()
        // 100 MiB written in a child (not the main process), then a second of CPU time.
        let script = """
            python3 -c 'x = bytes(range(256)) * (400 * 1024); import time; time.sleep(0.2)'
            python3 -c 'import time; end = time.process_time() + 1
            while time.process_time() < end: pass'
            """
        let finished = try await run(executor, ProcessRequest(command: "sh", arguments: ["-c", script]))
        #expect(finished.result.termination == .exited(0))
        let usage = try #require(finished.result.usage)
        #expect(usage.userSeconds + usage.systemSeconds >= 1.0, "\(usage)")
        let peak = try #require(usage.peakMemoryBytes)
        #expect(peak >= 100 << 20 && peak <= 200 << 20, "peak \(peak) bytes")
        #expect(!usage.outOfMemory)
    }

    @Test("a CPU share throttles the job: 20% of a CPU for 1.5 s of spinning is about 0.3 s of CPU time")
    func cpuShare() async throws {
        let executor = try Self.executor()
        var spinner = TestTask.request("spin", "1.5")
        spinner.limits = ResourceLimits(cpuPercent: 20)
        let finished = try await run(executor, spinner)
        #expect(finished.stdout == "spun\n")
        let usage = try #require(finished.result.usage)
        let cpu = usage.userSeconds + usage.systemSeconds
        // Unthrottled it would be 1.5 s; the quota allows 0.3 s, plus one period's rounding.
        #expect(cpu > 0.1 && cpu < 0.6, "\(cpu) s of CPU in 1.5 s at 20%")
    }

    @Test("the job's group is gone once it ended")
    func groupRemoved() async throws {
        let executor = try Self.executor()
        var request = ProcessRequest(command: "true")
        request.tag = "xn-test-\(UInt32.random(in: .min ... .max))"
        let finished = try await run(executor, request)
        #expect(finished.result.termination == .exited(0))
        let folders = try #require(executor.cgroups).jobFolders(named: request.tag!)
        #expect(!folders.isEmpty)
        // Removed right after the end is reported, not before it.
        #expect(
            await eventually { folders.allSatisfy { !FileManager.default.fileExists(atPath: $0) } }, "\(folders)")
    }
}

/// A runner without cgroups refuses what only a cgroup holds, rather than run the job without it.
@Suite("JobExecutor: without cgroups")
struct ExecutorWithoutCgroupsTests {
    @Test("a job's own memory limit is refused, with the reason")
    func jobLimitRefused() async throws {
        let executor = PipeExecutor(withoutCgroups: "--no-cgroups")
        var request = ProcessRequest(command: "true")
        request.limits = ResourceLimits(addressSpaceBytes: 256 << 20)
        request.limitsNeedingCgroup = ["limits.memory"]
        #expect(
            refusal { _ = try executor.start(request) }
                == "limits.memory needs a cgroup of the job's own, and this runner has none: --no-cgroups")
        // The runner's own memory limit still holds per process, as before cgroups.
        request.limitsNeedingCgroup = []
        let finished = try await run(executor, request)
        #expect(finished.result.termination == .exited(0))
    }

    @Test("a CPU share is refused")
    func cpuShareRefused() throws {
        var request = ProcessRequest(command: "true")
        request.limits = ResourceLimits(cpuPercent: 50)
        #expect(throws: SpawnError.self) { _ = try PipeExecutor().start(request) }
    }
}

/// The unified hierarchy (cgroup v2), forced where the machine mounts one: killing through
/// `cgroup.kill` and CPU time from `cpu.stat` hold with or without controllers; limits hold where
/// the runner's group offers them and are refused with the reason where it does not.
@Suite(
    "JobExecutor: cgroup v2", .timeLimit(.minutes(1)), .serialized,
    .enabled(if: geteuid() == 0 && (try? CgroupHost.discover(version: .v2).get()) != nil))
struct ExecutorCgroupV2Tests {
    static let host = try! CgroupHost.discover(version: .v2).get()

    @Test("a process that left the job's group and session and cleared its environment dies with the job")
    func escapedProcessDies() async throws {
        let executor = PipeExecutor(cgroups: Self.host)
        let script = "setsid env -i sleep 300.6 & echo started; wait"
        let process = try executor.start(ProcessRequest(command: "sh", arguments: ["-c", script]))
        let output = OutputCollector(process)
        #expect(await eventually { !ProcessTable.members(running: ["sleep", "300.6"]).isEmpty })
        _ = await process.terminate(grace: .milliseconds(200))
        #expect(await eventually { ProcessTable.members(running: ["sleep", "300.6"]).isEmpty }, "cgroup.kill took it")
        #expect(output.text(.stdout) == "started\n")
    }

    @Test("CPU time comes from the group's cpu.stat, and the group is gone after")
    func cpuTime() async throws {
        let executor = PipeExecutor(cgroups: Self.host)
        var request = TestTask.request("burn", "0.5")
        request.tag = "xn-test-\(UInt32.random(in: .min ... .max))"
        let finished = try await run(executor, request)
        #expect(finished.stdout == "spun\n")
        let usage = try #require(finished.result.usage)
        #expect(usage.userSeconds + usage.systemSeconds >= 0.5, "\(usage)")
        let folders = Self.host.jobFolders(named: request.tag!)
        #expect(folders.count == 1 && folders[0].contains("/xn-\(getpid())/"), "\(folders)")
        #expect(await eventually { !FileManager.default.fileExists(atPath: folders[0]) })
    }

    @Test("a memory limit holds where the group has the memory controller, else it is refused")
    func memoryLimit() async throws {
        let executor = PipeExecutor(cgroups: Self.host)
        var hog = ProcessRequest(command: "python3", arguments: ["-c", "x = bytes(range(256)) * (4 * 1024 * 1024)"])
        hog.limits = ResourceLimits(addressSpaceBytes: 256 << 20)
        guard Self.host.description.contains("memory") else {
            #expect(Self.host.description == "jobs run in cgroups (v2: no controllers, so no limits)")
            #expect(
                refusal { _ = try executor.start(hog) }
                    == "limits.memory needs the memory cgroup controller, which this runner's cgroup (v2) was not given"
            )
            return
        }
        let finished = try await run(executor, hog)
        #expect(finished.result.termination == .signaled(SIGKILL))
        #expect(finished.result.usage?.outOfMemory == true)
    }
}
