import Foundation
import Testing

@testable import XNExec

/// What a job's cgroup writes and reads, in the kernel's documented formats, against a folder
/// laid out like a cgroup v2 group with the memory, pids and cpu controllers. This machine's v2
/// hierarchy has no controllers (they are bound to v1), so the files are checked here.
@Suite("JobCgroup: the v2 interface files")
struct CgroupFilesTests {
    static func group(_ files: [String: String]) throws -> (JobCgroup, String) {
        let folder = NSTemporaryDirectory() + "xn-cgroup-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (name, content) in files {
            try Data(content.utf8).write(to: URL(fileURLWithPath: folder + "/" + name))
        }
        return (JobCgroup(version: .v2, folders: ["": folder]), folder)
    }

    static func read(_ folder: String, _ name: String) -> String {
        (try? String(contentsOfFile: folder + "/" + name, encoding: .utf8)) ?? "(none)"
    }

    @Test("limits: memory.max with no swap and the whole group OOM-killed, pids.max, cpu.max per 100 ms")
    func limits() throws {
        // Empty: a regular file keeps what a shorter write leaves after it; a cgroup file does not.
        let (group, folder) = try Self.group([
            "memory.max": "", "memory.swap.max": "", "memory.oom.group": "", "pids.max": "", "cpu.max": "",
        ])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try group.apply(
            CgroupLimits(memoryBytes: 268_435_456, processes: 40, cpuPercent: 50),
            controllers: ["memory", "pids", "cpu"])
        #expect(Self.read(folder, "memory.max") == "268435456")
        #expect(Self.read(folder, "memory.swap.max") == "0")
        #expect(Self.read(folder, "memory.oom.group") == "1")
        #expect(Self.read(folder, "pids.max") == "40")
        #expect(Self.read(folder, "cpu.max") == "50000 100000")
    }

    @Test("a limit whose controller the group lacks is refused, naming both")
    func missingController() throws {
        let (group, folder) = try Self.group([:])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(throws: SpawnError.self) {
            try group.apply(CgroupLimits(processes: 40), controllers: ["memory"])
        }
        #expect(
            refusal { try group.apply(CgroupLimits(cpuPercent: 50), controllers: ["memory", "pids"]) }
                == "limits.cpu_percent needs the cpu cgroup controller, which this runner's cgroup (v2) was not given")
    }

    @Test("usage: cpu.stat in microseconds, memory.peak in bytes, an OOM kill from memory.events")
    func usage() throws {
        let (group, folder) = try Self.group([
            "cpu.stat": "usage_usec 1750000\nuser_usec 1500000\nsystem_usec 250000\nnr_periods 0\n",
            "memory.peak": "157286400\n",
            "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        ])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let usage = try #require(group.usage())
        #expect(
            usage
                == ResourceUsage(userSeconds: 1.5, systemSeconds: 0.25, peakMemoryBytes: 157_286_400, outOfMemory: true)
        )
    }

    @Test("usage without the memory controller: CPU time only")
    func usageWithoutMemory() throws {
        let (group, folder) = try Self.group(["cpu.stat": "usage_usec 20\nuser_usec 12\nsystem_usec 8\n"])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(
            group.usage()
                == ResourceUsage(
                    userSeconds: 0.000012, systemSeconds: 0.000008, peakMemoryBytes: nil, outOfMemory: false))
    }
}
