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

/// Which cgroup interface a runner uses.
public enum CgroupVersion: Sendable, Equatable {
    /// One hierarchy per controller (memory, pids, freezer, cpuacct, cpu).
    case v1
    /// The unified hierarchy, in the runner's own (delegated) group.
    case v2
}

/// Where a runner makes one control group per job, under a folder of its own inside its own
/// group (`…/<runner's group>/xn-<pid>/<job>`): cgroup v2 where the runner's group is delegated
/// to it with the memory and pids controllers, else the v1 hierarchies, else v2 without limits
/// (killing and CPU time only).
public final class CgroupHost: Sendable {
    static let requiredV1 = ["memory", "pids", "freezer"]
    static let optionalV1 = ["cpuacct", "cpu"]
    /// The v2 controllers a runner enables for its jobs where its group has them.
    static let wantedV2 = ["memory", "pids", "cpu"]

    let version: CgroupVersion
    /// v1: per controller, the folder the jobs' groups go in. v2: one entry, "" → the folder.
    let bases: [String: String]
    /// v2: the controllers enabled for the jobs' groups.
    let controllers: Set<String>

    init(version: CgroupVersion, bases: [String: String], controllers: Set<String> = []) {
        self.version = version
        self.bases = bases
        self.controllers = controllers
    }

    /// One line for the start banner.
    public var description: String {
        switch version {
        case .v1:
            return "jobs run in cgroups (v1: " + bases.keys.sorted().joined(separator: ", ") + ")"
        case .v2:
            let enabled = controllers.sorted().joined(separator: ", ")
            return "jobs run in cgroups (v2: " + (enabled.isEmpty ? "no controllers, so no limits" : enabled) + ")"
        }
    }

    /// The cgroups this process may make groups in, or why it may not; `version` forces one.
    public static func discover(version: CgroupVersion? = nil) -> Result<CgroupHost, CgroupUnavailable> {
        guard let mounts = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
            let own = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
        else { return .failure(CgroupUnavailable(description: "cannot read /proc/self/mountinfo")) }
        switch version {
        case .v1: return discoverV1(mounts: mounts, own: own)
        case .v2: return discoverV2(mounts: mounts, own: own, needsLimits: false)
        case nil:
            let full = discoverV2(mounts: mounts, own: own, needsLimits: true)
            if case .success = full { return full }
            let v1 = discoverV1(mounts: mounts, own: own)
            if case .success = v1 { return v1 }
            if case .success(let bare) = discoverV2(mounts: mounts, own: own, needsLimits: false) {
                return .success(bare)
            }
            guard case .failure(let whyNotV1) = v1, case .failure(let whyNotV2) = full else { return v1 }
            return .failure(CgroupUnavailable(description: "\(whyNotV2); \(whyNotV1)"))
        }
    }

    private static func discoverV1(mounts: String, own: String) -> Result<CgroupHost, CgroupUnavailable> {
        var folders: [String: String] = [:]
        for controller in requiredV1 + optionalV1 {
            guard let mount = mount(ofType: "cgroup", controller: controller, in: mounts) else { continue }
            guard let path = ownPath(of: controller, in: own) else { continue }
            folders[controller] = join(mount, path)
        }
        let missing = requiredV1.filter { folders[$0] == nil }
        guard missing.isEmpty else {
            return .failure(
                CgroupUnavailable(description: "no cgroup v1 hierarchy for " + missing.joined(separator: ", ")))
        }
        var bases: [String: String] = [:]
        // The required ones first, so a refusal names one of them; an optional one this process
        // may not use is left out (no CPU time, or no CPU share).
        for controller in requiredV1 + optionalV1 {
            guard let folder = folders[controller] else { continue }
            switch makeBase(in: folder) {
            case .success(let base): bases[controller] = base
            case .failure where optionalV1.contains(controller): continue
            case .failure(let reason):
                for made in bases.values { rmdir(made) }
                return .failure(reason)
            }
        }
        return .success(CgroupHost(version: .v1, bases: bases))
    }

    /// The runner's v2 group, with `xn-<pid>` in it for the jobs. Where controllers are to be
    /// enabled below a group that is not the root, the runner first moves itself into a leaf
    /// (`xn-<pid>/xn-runner`): v2 lets only leaves hold processes.
    private static func discoverV2(
        mounts: String, own: String, needsLimits: Bool
    ) -> Result<CgroupHost, CgroupUnavailable> {
        guard let mount = mount(ofType: "cgroup2", controller: nil, in: mounts), let path = ownPath(of: "", in: own)
        else { return .failure(CgroupUnavailable(description: "no cgroup v2 hierarchy")) }
        let group = join(mount, path)
        guard access(group + "/cgroup.procs", W_OK) == 0 else {
            return .failure(CgroupUnavailable(description: "cgroup v2 group \(group) is not delegated to this user"))
        }
        let offered = Set(
            ((try? String(contentsOfFile: group + "/cgroup.controllers", encoding: .utf8)) ?? "")
                .split(whereSeparator: \.isWhitespace).map(String.init))
        let wanted = Set(wantedV2).intersection(offered)
        if needsLimits, !wanted.isSuperset(of: ["memory", "pids"]) {
            return .failure(
                CgroupUnavailable(
                    description: "cgroup v2 group \(group) does not offer the memory and pids controllers"))
        }
        let base: String
        switch makeBase(in: group) {
        case .success(let made): base = made
        case .failure(let reason): return .failure(reason)
        }
        var enabled: Set<String> = []
        if !wanted.isEmpty {
            let isRoot = path == "/"
            let leaf = base + "/xn-runner"
            let movedOut =
                isRoot
                || ((mkdir(leaf, 0o755) == 0 || errno == EEXIST)
                    && (try? JobCgroup.write(String(getpid()), to: leaf + "/cgroup.procs")) != nil)
            let line = wanted.sorted().map { "+" + $0 }.joined(separator: " ")
            if movedOut, (try? JobCgroup.write(line, to: group + "/cgroup.subtree_control")) != nil,
                (try? JobCgroup.write(line, to: base + "/cgroup.subtree_control")) != nil
            {
                enabled = wanted
            }
        }
        if needsLimits, !enabled.isSuperset(of: ["memory", "pids"]) {
            return .failure(
                CgroupUnavailable(description: "cannot enable the memory and pids controllers below \(group)"))
        }
        return .success(CgroupHost(version: .v2, bases: ["": base], controllers: enabled))
    }

    /// `xn-<pid>` in `folder`, after removing what dead runners left there.
    private static func makeBase(in folder: String) -> Result<String, CgroupUnavailable> {
        removeStale(in: folder)
        let base = folder + "/xn-\(getpid())"
        if mkdir(base, 0o755) != 0 && errno != EEXIST {
            return .failure(
                CgroupUnavailable(description: "cannot create \(base): \(String(cString: strerror(errno)))"))
        }
        return .success(base)
    }

    /// A group for one job, with `limits` set, ready for a process to join.
    func makeGroup(_ name: String, limits: CgroupLimits) throws(SpawnError) -> JobCgroup {
        var folders: [String: String] = [:]
        do throws(SpawnError) {
            for (controller, base) in bases {
                // A folder in a v1 hierarchy costs a mkdir, a join and a rmdir per job: the cpu and
                // pids ones only for a CPU share or a process limit (freezer kills, memory and
                // cpuacct measure every job).
                if version == .v1, controller == "cpu", limits.cpuPercent == nil { continue }
                if version == .v1, controller == "pids", limits.processes == nil { continue }
                let folder = base + "/" + name
                if mkdir(folder, 0o755) != 0 && errno != EEXIST { throw Self.failure("create \(folder)", errno) }
                folders[controller] = folder
            }
            let group = JobCgroup(version: version, folders: folders)
            try group.apply(limits, controllers: controllers)
            return group
        } catch {
            for folder in folders.values { rmdir(folder) }
            throw error
        }
    }

    /// Where the group of a job named `name` is (or was), one folder per hierarchy.
    public func jobFolders(named name: String) -> [String] {
        Set(bases.values).sorted().map { $0 + "/" + name }
    }

    /// Removes the runner's folders once it has no jobs (at shutdown). A v2 runner that moved
    /// itself into `xn-runner` is still in it: the next runner removes that folder.
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

    private static func join(_ mount: (point: String, root: String), _ path: String) -> String {
        let relative = path.hasPrefix(mount.root) ? String(path.dropFirst(mount.root.count)) : path
        let trimmed = relative == "/" ? "" : relative
        return mount.point + (trimmed.hasPrefix("/") || trimmed.isEmpty ? "" : "/") + trimmed
    }

    /// The mount of a cgroup (v1, with `controller`) or cgroup2 file system.
    private static func mount(
        ofType type: String, controller: String?, in mountinfo: String
    ) -> (point: String, root: String)? {
        for line in mountinfo.split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let after = halves[1].split(separator: " ")
            guard after.count >= 3, after[0] == type else { continue }
            if let controller, !after[2].split(separator: ",").contains(Substring(controller)) { continue }
            let before = halves[0].split(separator: " ")
            guard before.count >= 5 else { continue }
            return (unescape(String(before[4])), unescape(String(before[3])))
        }
        return nil
    }

    /// The process's group in the hierarchy of `controller` ("" for v2's `0::` line).
    private static func ownPath(of controller: String, in cgroups: String) -> String? {
        for line in cgroups.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if controller.isEmpty
                ? (fields[0] == "0" && fields[1].isEmpty)
                : fields[1].split(separator: ",").contains(Substring(controller))
            {
                return String(fields[2])
            }
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
