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
