import Foundation
import Glibc

/// What a job's control group limits: all of the job together, whatever it forks or which user
/// else runs processes.
public struct CgroupLimits: Sendable, Equatable {
    /// Memory, swap included where the kernel accounts it; the OOM killer acts beyond it.
    public var memoryBytes: Int?
    /// Processes and threads of the job at once; a fork beyond fails.
    public var processes: Int?
    /// CPU time per wall-clock time, in percent of one CPU (150: one and a half); the job is
    /// throttled beyond it (CFS quota).
    public var cpuPercent: Int?

    public init(memoryBytes: Int? = nil, processes: Int? = nil, cpuPercent: Int? = nil) {
        self.memoryBytes = memoryBytes
        self.processes = processes
        self.cpuPercent = cpuPercent
    }

    public var isEmpty: Bool { self == CgroupLimits() }
}

/// What a job used: from its control group (all its processes), else the CPU time the kernel
/// counted for its main process and the children it waited for.
public struct ResourceUsage: Sendable, Equatable, Codable {
    public var userSeconds: Double
    public var systemSeconds: Double
    /// The most memory the job held at once: its cgroup's peak; nil without a cgroup.
    public var peakMemoryBytes: Int?
    /// The OOM killer killed a process of the job inside its cgroup's memory limit.
    public var outOfMemory: Bool

    public init(userSeconds: Double, systemSeconds: Double, peakMemoryBytes: Int?, outOfMemory: Bool = false) {
        self.userSeconds = userSeconds
        self.systemSeconds = systemSeconds
        self.peakMemoryBytes = peakMemoryBytes
        self.outOfMemory = outOfMemory
    }
}

/// Why a runner cannot give its jobs control groups; jobs then run as before, and one that asks
/// for a limit only a cgroup can hold is refused.
public struct CgroupUnavailable: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// The cgroup v1 hierarchies (memory, pids, freezer, and cpuacct for CPU time where it is mounted)
/// in which a runner makes one group per job, under a folder of its own inside its own group (`…/<runner's group>/xn-<pid>/<job>`).
public final class CgroupHost: Sendable {
    static let required = ["memory", "pids", "freezer"]
    static let optional = ["cpuacct", "cpu"]

    /// Per controller, the folder the jobs' groups go in.
    let bases: [String: String]

    init(bases: [String: String]) {
        self.bases = bases
    }

    /// One line for the start banner.
    public var description: String {
        "jobs run in cgroups (v1: " + bases.keys.sorted().joined(separator: ", ") + ")"
    }

    /// The hierarchies this process may make groups in, or why it may not.
    public static func discover() -> Result<CgroupHost, CgroupUnavailable> {
        guard let mounts = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
            let own = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
        else { return .failure(CgroupUnavailable(description: "cannot read /proc/self/mountinfo")) }
        var folders: [String: String] = [:]
        for controller in required + optional {
            guard let mount = v1Mount(of: controller, in: mounts) else { continue }
            guard let path = ownPath(of: controller, in: own) else { continue }
            let relative = path.hasPrefix(mount.root) ? String(path.dropFirst(mount.root.count)) : path
            folders[controller] = mount.point + (relative.hasPrefix("/") || relative.isEmpty ? "" : "/") + relative
        }
        let missing = required.filter { folders[$0] == nil }
        guard missing.isEmpty else {
            return .failure(
                CgroupUnavailable(
                    description: "no cgroup v1 hierarchy for " + missing.joined(separator: ", ")
                        + " (cgroup v2 is not supported yet)"))
        }
        var bases: [String: String] = [:]
        for (controller, folder) in folders {
            removeStale(in: folder)
            let base = folder + "/xn-\(getpid())"
            if mkdir(base, 0o755) != 0 && errno != EEXIST {
                let reason = String(cString: strerror(errno))
                for made in bases.values { rmdir(made) }
                return .failure(CgroupUnavailable(description: "cannot create \(base): \(reason)"))
            }
            bases[controller] = base
        }
        return .success(CgroupHost(bases: bases))
    }

    /// A group for one job, with `limits` set, ready for a process to join.
    func makeGroup(_ name: String, limits: CgroupLimits) throws(SpawnError) -> JobCgroup {
        var folders: [String: String] = [:]
        do throws(SpawnError) {
            for (controller, base) in bases {
                let folder = base + "/" + name
                if mkdir(folder, 0o755) != 0 && errno != EEXIST { throw Self.failure("create \(folder)", errno) }
                folders[controller] = folder
            }
            let group = JobCgroup(folders: folders)
            try group.apply(limits)
            return group
        } catch {
            for folder in folders.values { rmdir(folder) }
            throw error
        }
    }

    /// Where the group of a job named `name` is (or was), one folder per hierarchy.
    public func jobFolders(named name: String) -> [String] {
        bases.values.sorted().map { $0 + "/" + name }
    }

    /// Removes the runner's folders once it has no jobs (at shutdown).
    public func remove() {
        for base in bases.values { rmdir(base) }
    }

    static func failure(_ what: String, _ code: Int32) -> SpawnError {
        SpawnError(code: code, description: "cannot \(what) for the job's cgroup: \(String(cString: strerror(code)))")
    }

    /// A runner that died left `xn-PID` folders: their empty job groups and themselves go.
    private static func removeStale(in folder: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in names where name.hasPrefix("xn-") {
            guard let pid = Int32(name.dropFirst(3)), pid != getpid(), kill(pid, 0) != 0 else { continue }
            let stale = folder + "/" + name
            for job in (try? FileManager.default.contentsOfDirectory(atPath: stale)) ?? [] {
                rmdir(stale + "/" + job)
            }
            rmdir(stale)
        }
    }

    private static func v1Mount(of controller: String, in mountinfo: String) -> (point: String, root: String)? {
        for line in mountinfo.split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let after = halves[1].split(separator: " ")
            guard after.count >= 3, after[0] == "cgroup" else { continue }
            guard after[2].split(separator: ",").contains(Substring(controller)) else { continue }
            let before = halves[0].split(separator: " ")
            guard before.count >= 5 else { continue }
            return (unescape(String(before[4])), unescape(String(before[3])))
        }
        return nil
    }

    private static func ownPath(of controller: String, in cgroups: String) -> String? {
        for line in cgroups.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[1].split(separator: ",").contains(Substring(controller)) else { continue }
            return String(fields[2])
        }
        return nil
    }

    /// mountinfo writes spaces and the like as octal escapes (`\040`).
    private static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
                let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// One job's control group, in each hierarchy of its runner's `CgroupHost`.
final class JobCgroup: Sendable {
    /// Per controller, the job's folder.
    let folders: [String: String]

    init(folders: [String: String]) {
        self.folders = folders
    }

    func apply(_ limits: CgroupLimits) throws(SpawnError) {
        if let bytes = limits.memoryBytes, let memory = folders["memory"] {
            try write(String(bytes), to: memory + "/memory.limit_in_bytes")
            // With swap accounted, the same limit for memory and swap together.
            if FileManager.default.fileExists(atPath: memory + "/memory.memsw.limit_in_bytes") {
                try write(String(bytes), to: memory + "/memory.memsw.limit_in_bytes")
            }
        }
        if let processes = limits.processes, let pids = folders["pids"] {
            try write(String(processes), to: pids + "/pids.max")
        }
        if let percent = limits.cpuPercent {
            guard let cpu = folders["cpu"] else {
                throw SpawnError(
                    code: ENOTSUP,
                    description: "limits.cpu_percent needs the cpu cgroup controller, which this runner's cgroups lack")
            }
            // A quota per 100 ms period: percent × 1 ms.
            try write("100000", to: cpu + "/cpu.cfs_period_us")
            try write(String(max(1, percent) * 1000), to: cpu + "/cpu.cfs_quota_us")
        }
    }

    /// `cgroup.procs` of each hierarchy, open for the child to write itself into (close-on-exec).
    func joinDescriptors() throws(SpawnError) -> [Int32] {
        var fds: [Int32] = []
        for folder in Set(folders.values).sorted() {
            let fd = open(folder + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
            if fd < 0 {
                let code = errno
                for opened in fds { close(opened) }
                throw CgroupHost.failure("open \(folder)/cgroup.procs", code)
            }
            fds.append(fd)
        }
        return fds
    }

    /// The processes in the group now.
    var members: [Int32] {
        guard let folder = folders["pids"] ?? folders.values.first,
            let text = try? String(contentsOfFile: folder + "/cgroup.procs", encoding: .utf8)
        else { return [] }
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// Sends `signal` to every process in the group. SIGKILL freezes the group first, so nothing
    /// in it can fork a process the kill would miss.
    func signal(_ signal: Int32) {
        guard signal == SIGKILL, let freezer = folders["freezer"] else {
            for pid in members { kill(pid, signal) }
            return
        }
        guard (try? write("FROZEN", to: freezer + "/freezer.state")) != nil else {
            for pid in members { kill(pid, signal) }
            return
        }
        // Freezing takes effect task by task: wait for it (briefly), kill, then thaw so the
        // killed processes can run to their end.
        for _ in 0..<1000 {
            let state = (try? String(contentsOfFile: freezer + "/freezer.state", encoding: .utf8)) ?? ""
            if state.hasPrefix("FROZEN") { break }
            usleep(1000)
        }
        for pid in members { kill(pid, SIGKILL) }
        _ = try? write("THAWED", to: freezer + "/freezer.state")
    }

    /// What the group used, read before it is removed.
    func usage() -> ResourceUsage? {
        guard let cpuacct = folders["cpuacct"],
            let user = Self.number(cpuacct + "/cpuacct.usage_user"),
            let system = Self.number(cpuacct + "/cpuacct.usage_sys")
        else { return nil }
        let memory = folders["memory"]
        let peak = memory.flatMap { Self.number($0 + "/memory.max_usage_in_bytes") }
        let oom =
            memory.flatMap { try? String(contentsOfFile: $0 + "/memory.oom_control", encoding: .utf8) }?
            .split(separator: "\n").first { $0.hasPrefix("oom_kill ") }
            .flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        return ResourceUsage(
            userSeconds: Double(user) / 1e9, systemSeconds: Double(system) / 1e9, peakMemoryBytes: peak,
            outOfMemory: oom > 0)
    }

    /// Kills what is left and removes the group's folders (waiting, briefly, for the killed to
    /// leave it: a folder with processes cannot go).
    func remove() {
        if !members.isEmpty { signal(SIGKILL) }
        for _ in 0..<2000 {
            if members.isEmpty { break }
            usleep(1000)
        }
        for folder in Set(folders.values) {
            for _ in 0..<100 {
                if rmdir(folder) == 0 || errno == ENOENT { break }
                usleep(1000)
            }
        }
    }

    private func write(_ text: String, to path: String) throws(SpawnError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CgroupHost.failure("open \(path)", errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw CgroupHost.failure("write \(text) to \(path)", errno)
        }
    }

    private static func number(_ path: String) -> Int? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap {
            Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
