import Foundation

/// Live processes found through /proc (nothing where there is no /proc).
public enum ProcessTable {
    /// Processes whose session is `session`.
    public static func members(session: Int32) -> [Int32] {
        processes { $0.session == session }
    }

    /// Processes whose process group is `group`.
    public static func members(group: Int32) -> [Int32] {
        processes { $0.group == group }
    }

    /// The variable that marks a job's processes (`XN_JOB_ID=<job id>`).
    public static let markerName = "XN_JOB_ID"

    /// Processes whose environment holds `marker` (`NAME=VALUE`), whatever group or session they
    /// moved to. Only processes this one may read the environment of (its user's, or all as root).
    public static func members(marked marker: String) -> [Int32] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        let wanted = Array(marker.utf8)
        return names.compactMap { name -> Int32? in
            guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/environ")
            else { return nil }
            let found = data.split(separator: 0, omittingEmptySubsequences: true).contains { $0.elementsEqual(wanted) }
            return found && !isZombie(pid) ? pid : nil
        }
    }

    /// Processes running exactly `arguments` (their /proc/PID/cmdline), zombies left out: how a
    /// caller sees that a program it started has got as far as running.
    public static func members(running arguments: [String]) -> [Int32] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        let wanted = arguments.map { Array($0.utf8) }
        return names.compactMap { name -> Int32? in
            guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline")
            else { return nil }
            let found = data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map(Array.init)
            return found == wanted && !isZombie(pid) ? pid : nil
        }
    }

    private static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.range(of: ") ", options: .backwards)
        else { return true }
        return stat[close.upperBound...].hasPrefix("Z")
    }

    private struct Entry {
        var pid: Int32
        var group: Int32
        var session: Int32
    }

    /// Every process but zombies, with the fields of /proc/PID/stat after "pid (comm) ":
    /// state, ppid, pgrp, session.
    private static func processes(where wanted: (Entry) -> Bool) -> [Int32] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { name -> Int32? in
            guard let pid = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.range(of: ") ", options: .backwards)
            else { return nil }
            let fields = stat[close.upperBound...].split(separator: " ")
            guard fields.count > 3, fields[0] != "Z", let group = Int32(fields[2]), let session = Int32(fields[3])
            else { return nil }
            return wanted(Entry(pid: pid, group: group, session: session)) ? pid : nil
        }
    }
}
