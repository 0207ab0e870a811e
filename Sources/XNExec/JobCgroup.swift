import Foundation
import Glibc

/// One job's control group: in each hierarchy of its runner's `CgroupHost` (v1), or one folder
/// of the unified hierarchy (v2, keyed "").
final class JobCgroup: Sendable {
    let version: CgroupVersion
    /// Per controller (v1) or "" (v2), the job's folder.
    let folders: [String: String]

    init(version: CgroupVersion, folders: [String: String]) {
        self.version = version
        self.folders = folders
    }

    /// The v2 folder, or the v1 folder of `controller`.
    private func folder(_ controller: String) -> String? {
        version == .v2 ? folders[""] : folders[controller]
    }

    /// Sets `limits`; one the group cannot hold (a v2 controller the runner was not given) fails
    /// the job with the reason rather than run it without.
    func apply(_ limits: CgroupLimits, controllers: Set<String>) throws(SpawnError) {
        func lacking(_ field: String, _ controller: String) -> SpawnError {
            SpawnError(
                code: ENOTSUP,
                description: "\(field) needs the \(controller) cgroup controller, which this runner's cgroup "
                    + (version == .v2 ? "(v2) was not given" : "hierarchies lack"))
        }
        let has = { (controller: String) in
            self.version == .v1 ? self.folders[controller] != nil : controllers.contains(controller)
        }
        if let bytes = limits.memoryBytes {
            guard has("memory"), let memory = folder("memory") else { throw lacking("limits.memory", "memory") }
            switch version {
            case .v1:
                try Self.write(String(bytes), to: memory + "/memory.limit_in_bytes")
                // With swap accounted, the same limit for memory and swap together.
                if FileManager.default.fileExists(atPath: memory + "/memory.memsw.limit_in_bytes") {
                    try Self.write(String(bytes), to: memory + "/memory.memsw.limit_in_bytes")
                }
            case .v2:
                try Self.write(String(bytes), to: memory + "/memory.max")
                // v2 limits swap on its own: none, so memory and swap together stay within the limit.
                if FileManager.default.fileExists(atPath: memory + "/memory.swap.max") {
                    try Self.write("0", to: memory + "/memory.swap.max")
                }
                // The OOM killer ends the whole job, not one process of it.
                _ = try? Self.write("1", to: memory + "/memory.oom.group")
            }
        }
        if let processes = limits.processes {
            guard has("pids"), let pids = folder("pids") else { throw lacking("limits.procs", "pids") }
            try Self.write(String(processes), to: pids + "/pids.max")
        }
        if let percent = limits.cpuPercent {
            guard has("cpu"), let cpu = folder("cpu") else { throw lacking("limits.cpu_percent", "cpu") }
            // A quota per 100 ms period: percent × 1 ms.
            let quota = max(1, percent) * 1000
            switch version {
            case .v1:
                try Self.write("100000", to: cpu + "/cpu.cfs_period_us")
                try Self.write(String(quota), to: cpu + "/cpu.cfs_quota_us")
            case .v2:
                try Self.write("\(quota) 100000", to: cpu + "/cpu.max")
            }
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
        guard let folder = folder("pids") ?? folders.values.first, let text = Self.read(folder + "/cgroup.procs")
        else { return [] }
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// Sends `signal` to every process in the group. SIGKILL goes through `cgroup.kill` (v2),
    /// else freezes the group first, so nothing in it can fork a process the kill would miss.
    func signal(_ signal: Int32) {
        guard signal == SIGKILL else {
            for pid in members { kill(pid, signal) }
            return
        }
        if version == .v2, let folder = folders[""], (try? Self.write("1", to: folder + "/cgroup.kill")) != nil {
            return
        }
        // Where to freeze and thaw, and where the kernel says the group is frozen.
        let (control, frozen, thawed, state, frozenMark) =
            version == .v2
            ? ("cgroup.freeze", "1", "0", "cgroup.events", "frozen 1")
            : ("freezer.state", "FROZEN", "THAWED", "freezer.state", "FROZEN")
        guard let folder = folder("freezer"), (try? Self.write(frozen, to: folder + "/" + control)) != nil else {
            for pid in members { kill(pid, signal) }
            return
        }
        // Freezing takes effect task by task: wait for it (briefly), kill, then thaw so the
        // killed processes can run to their end.
        for _ in 0..<1000 {
            let now = (try? String(contentsOfFile: folder + "/" + state, encoding: .utf8)) ?? ""
            if now.contains(frozenMark) { break }
            usleep(1000)
        }
        for pid in members { kill(pid, SIGKILL) }
        _ = try? Self.write(thawed, to: folder + "/" + control)
    }

    /// What the group used, read before it is removed.
    func usage() -> ResourceUsage? {
        switch version {
        case .v1:
            guard let cpuacct = folders["cpuacct"],
                let user = Self.number(cpuacct + "/cpuacct.usage_user"),
                let system = Self.number(cpuacct + "/cpuacct.usage_sys")
            else { return nil }
            let memory = folders["memory"]
            let peak = memory.flatMap { Self.number($0 + "/memory.max_usage_in_bytes") }
            let oom = memory.flatMap { Self.field("oom_kill", in: $0 + "/memory.oom_control") } ?? 0
            return ResourceUsage(
                userSeconds: Double(user) / 1e9, systemSeconds: Double(system) / 1e9, peakMemoryBytes: peak,
                outOfMemory: oom > 0)
        case .v2:
            // cpu.stat is there with or without the cpu controller; memory.* only with memory.
            guard let folder = folders[""], let user = Self.field("user_usec", in: folder + "/cpu.stat"),
                let system = Self.field("system_usec", in: folder + "/cpu.stat")
            else { return nil }
            let oom = Self.field("oom_kill", in: folder + "/memory.events") ?? 0
            return ResourceUsage(
                userSeconds: Double(user) / 1e6, systemSeconds: Double(system) / 1e6,
                peakMemoryBytes: Self.number(folder + "/memory.peak"), outOfMemory: oom > 0)
        }
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

    /// Removes the folders of a group with nothing left in it, without waiting; false when one
    /// would not go yet (the caller then uses `remove`).
    func removeIfEmpty() -> Bool {
        for folder in Set(folders.values) where rmdir(folder) != 0 && errno != ENOENT {
            return false
        }
        return true
    }

    static func write(_ text: String, to path: String) throws(SpawnError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CgroupHost.failure("open \(path)", errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw CgroupHost.failure("write \(text) to \(path)", errno)
        }
    }

    private static func number(_ path: String) -> Int? {
        read(path).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// The value of `name` in a flat-keyed file (`name value` lines).
    private static func field(_ name: String, in path: String) -> Int? {
        read(path)?.split(separator: "\n")
            .first { $0.hasPrefix(name + " ") }
            .flatMap { Int($0.split(separator: " ").last ?? "") }
    }

    /// A control file's text, read with plain system calls: a job's end reads five of them on the
    /// reactor thread, and Foundation's file reading costs several times the read itself.
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = Glibc.read(fd, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { return String(decoding: text, as: UTF8.self) }
            text += chunk[0..<count]
        }
    }
}
