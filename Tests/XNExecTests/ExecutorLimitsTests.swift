import Foundation
import Glibc
import Testing
import XNExec
import XNProtocol

/// Conformance: a process runs as the user asked for and inside its limits.
@Suite("JobExecutor: users and limits", .timeLimit(.minutes(1)))
struct ExecutorLimitsTests {
    static let nobody = ProcessIdentity(name: "nobody", uid: 65534, gid: 65534)
    static var isRoot: Bool { geteuid() == 0 }

    @Test("a process runs as the identity given, without root's groups", .enabled(if: isRoot), arguments: executors)
    func identity(executor: any JobExecutor) async throws {
        var request = ProcessRequest(command: "sh", arguments: ["-c", "id -u; id -g; id -G"])
        request.identity = Self.nobody
        let finished = try await run(executor, request)
        #expect(finished.result.termination == .exited(0))
        #expect(finished.stdout == "65534\n65534\n65534\n")
        let plain = try await run(executor, ProcessRequest(command: "id", arguments: ["-u"]))
        #expect(plain.stdout == "0\n")
    }

    @Test("limits on open files and CPU time are in place when the program starts", arguments: executors)
    func limitsApply(executor: any JobExecutor) async throws {
        var request = ProcessRequest(command: "sh", arguments: ["-c", "ulimit -n; ulimit -t"])
        request.limits = ResourceLimits(cpuSeconds: 7, openFiles: 64)
        let finished = try await run(executor, request)
        #expect(finished.stdout == "64\n7\n")
    }

    @Test("a memory hog fails inside its address-space limit", arguments: executors)
    func memoryHog(executor: any JobExecutor) async throws {
        var request = ProcessRequest(command: "python3", arguments: ["-c", "x = bytearray(1 << 30)"])
        request.limits = ResourceLimits(addressSpaceBytes: 256 << 20)
        let finished = try await run(executor, request)
        #expect(finished.result.termination == .exited(1))
        #expect(String(decoding: finished.bytes(.stderr), as: UTF8.self).contains("MemoryError"))
    }

    /// `xn-testtask forks 100`: every process it starts stays alive, so the number it holds only
    /// grows: read once it has tried them all, it is the peak, with no moment between samples to miss.
    @Test(
        "a job stops at its process limit and all of it dies with its group", .enabled(if: isRoot),
        arguments: executors)
    func processLimit(executor: any JobExecutor) async throws {
        var request = TestTask.request("forks", "100")
        request.identity = Self.nobody
        request.limits = ResourceLimits(cpuSeconds: 30, processes: 40)
        let process = try executor.start(request)
        let output = OutputCollector(process)
        #expect(await eventually { output.text(.stdout).hasPrefix("made ") })
        let peak = ProcessTable.members(group: process.pid).count
        // nobody's other processes on the machine count towards the same limit.
        #expect(peak <= 40, "\(peak) processes in the job's group")
        #expect(peak > 10, "forks below the limit worked: \(peak)")
        _ = await process.terminate(grace: .milliseconds(500))
        #expect(await eventually { ProcessTable.members(group: process.pid).isEmpty })
    }

    @Test("a user switch that is not allowed fails the spawn, it never runs as root", arguments: executors)
    func failedSwitch(executor: any JobExecutor) async throws {
        var request = ProcessRequest(command: "true")
        request.identity = ProcessIdentity(name: "nobody", uid: 65534, gid: 65534)
        if Self.isRoot {
            request.limits = ResourceLimits(openFiles: Int(Int32.max) + 1_000_000)  // above the hard maximum
        }
        #expect(throws: SpawnError.self) { _ = try executor.start(request) }
    }
}
