import Foundation
import Glibc

/// Submissions as a user's load would arrive: a real `xn hub` process running `/bin/true` on its
/// own slots, and wrk (another process) posting `?wait` submissions on 32 connections. Reports
/// completed jobs per second, the hub's own CPU time per job (its jobs' not counted) and its peak
/// memory; once as `xn hub` starts by default (with a cgroup per job where it may make them, as
/// root), once with `--no-cgroups`.
enum SubmitWrkBench {
    static func run(seconds: Int) async throws {
        guard let wrk = WrkBench.wrk else {
            throw BenchError("wrk is not installed: apt-get install wrk")
        }
        let folder = NSTemporaryDirectory() + "xn-bench-submit-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try script.write(toFile: folder + "/submit.lua", atomically: true, encoding: .utf8)
        print("submissions from wrk: POST /v1/jobs?wait=60 of /bin/true, 32 connections, \(seconds) s each")
        for (label, extra) in [("as xn hub starts", [String]()), ("with --no-cgroups", ["--no-cgroups"])] {
            let data = folder + "/data-" + (extra.isEmpty ? "default" : "plain")
            let (hub, url, line) = try WrkBench.startHub(["--data", data] + extra)
            defer {
                hub.terminate()
                hub.waitUntilExit()
            }
            let before = try cpuSeconds(of: hub.processIdentifier)
            let command = ["-t2", "-c32", "-d\(seconds)s", "-s", folder + "/submit.lua", url]
            let output = try WrkBench.capture(wrk, command)
            let after = try cpuSeconds(of: hub.processIdentifier)
            guard let completed = number(after: "completed:", in: output),
                let failed = number(after: "failed:", in: output), let rate = rate(in: output)
            else { throw BenchError("wrk said: \(output)") }
            guard failed == 0 else { throw BenchError("\(failed) submissions failed: \(output)") }
            let perJob = (after.own - before.own) / Double(max(1, completed))
            let peak = WrkBench.memory(of: hub.processIdentifier).peak
            print("  \(label) (\(line)):")
            print("    wrk \(command.joined(separator: " "))")
            print(
                String(
                    format: "    %.0f jobs/s; hub CPU %.0f µs per job, its jobs' %.0f µs; hub peak RSS %@", rate,
                    perJob * 1e6, (after.children - before.children) / Double(max(1, completed)) * 1e6, peak))
        }
    }

    /// Counts answers by status: a submission that did not succeed counts as failed.
    static let script = """
        wrk.method = "POST"
        wrk.path = "/v1/jobs?wait=60"
        wrk.body = '{"command":"/bin/true"}'
        wrk.headers["Content-Type"] = "application/json"
        local threads = {}
        function setup(thread) table.insert(threads, thread) end
        function init(args) completed = 0; failed = 0 end
        function response(status, headers, body)
          if status == 201 and string.find(body, '"state":"succeeded"', 1, true) then
            completed = completed + 1
          else
            failed = failed + 1
          end
        end
        function done(summary, latency, requests)
          local c, f = 0, 0
          for _, thread in ipairs(threads) do c = c + thread:get("completed"); f = f + thread:get("failed") end
          io.write(string.format("completed: %d\\nfailed: %d\\n", c, f))
        end
        """

    /// CPU seconds of `pid` itself and of the children it waited for, from /proc/PID/stat.
    private static func cpuSeconds(of pid: Int32) throws -> (own: Double, children: Double) {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command name, which ends at the last ')': state is field 3.
        guard let close = stat.lastIndex(of: ")") else { throw BenchError("no /proc/\(pid)/stat") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        func field(_ number: Int) -> Double { Double(fields[number - 3]) ?? 0 }
        return ((field(14) + field(15)) / ticks, (field(16) + field(17)) / ticks)
    }

    private static func number(after label: String, in text: String) -> Int? {
        text.split(separator: "\n").first { $0.hasPrefix(label) }
            .flatMap { Int($0.dropFirst(label.count).trimmingCharacters(in: .whitespaces)) }
    }

    private static func rate(in text: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix("Requests/sec:") }
            .flatMap { Double($0.dropFirst("Requests/sec:".count).trimmingCharacters(in: .whitespaces)) }
    }
}
