import Foundation
import Glibc

/// Lookups as a user's load would arrive: N finished jobs seeded through the store API, a real
/// `xn hub` process on them, and wrk (another process) asking for random ones among them by
/// `GET /v1/jobs/ID` and `GET /ID`; then the hub's memory. Prints the wrk commands so the load
/// can be run again by hand while the hub is up. With `XN_BENCH_KEEP=DIR` it only seeds DIR
/// (`data/`, `ids` and the wrk scripts) and keeps it, so builds can be compared on the same jobs
/// (`scripts/lookup_ab.sh`).
enum WrkBench {
    static func run(jobs: Int, seconds: Int) async throws {
        let keep = ProcessInfo.processInfo.environment["XN_BENCH_KEEP"]
        let folder = keep ?? (NSTemporaryDirectory() + "xn-bench-wrk-" + UUID().uuidString)
        try FileManager.default.createDirectory(atPath: folder + "/data", withIntermediateDirectories: true)
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: folder) } }
        let seeding = now()
        let ids = try await BenchHub.preload(jobs, into: folder + "/data/xn.sqlite")
        print("seeded \(jobs) finished jobs through the store API in \(String(format: "%.1f", now() - seeding)) s")
        try ids.joined(separator: "\n").appending("\n").write(
            toFile: folder + "/ids", atomically: true, encoding: .utf8)
        for (name, prefix) in [("v1.lua", "/v1/jobs/"), ("compat.lua", "/")] {
            try script(ids: folder + "/ids", prefix: prefix).write(
                toFile: folder + "/" + name, atomically: true, encoding: .utf8)
        }
        try pagesScript(jobs: jobs).write(toFile: folder + "/pages.lua", atomically: true, encoding: .utf8)
        if let keep {
            print("kept in \(keep): start a hub with `xn hub --data \(keep)/data --no-local`")
            return
        }

        let (hub, url, _) = try startHub(["--data", folder + "/data", "--no-local"])
        defer {
            hub.terminate()
            hub.waitUntilExit()
        }
        let commands = [
            "GET /v1/jobs/ID": "wrk -t2 -c16 -d\(seconds)s -s \(folder)/v1.lua \(url)",
            "GET /ID": "wrk -t2 -c16 -d\(seconds)s -s \(folder)/compat.lua \(url)",
            "GET /v1/jobs?limit=50 (the newest page)": "wrk -t2 -c16 -d\(seconds)s \(url)/v1/jobs?limit=50",
            "GET /v1/jobs?limit=50&before=SEQ (a random older page)":
                "wrk -t2 -c16 -d\(seconds)s -s \(folder)/pages.lua \(url)",
        ]
        print("hub \(url) (pid \(hub.processIdentifier)), RSS after start: \(memory(of: hub.processIdentifier).rss)")
        for (label, command) in commands.sorted(by: { $0.key > $1.key }) {
            print("\(label) of random jobs among \(jobs), 16 connections: \(command)")
            guard let wrk else {
                print("  (wrk not installed: apt-get install wrk)")
                continue
            }
            let output = try capture(wrk, Array(command.split(separator: " ").dropFirst().map(String.init)))
            for line in output.split(separator: "\n")
            where line.contains("Requests/sec") || line.contains("Latency") || line.contains("Non-2xx") {
                print("  " + String(line).trimmingCharacters(in: .whitespaces))
            }
        }
        // Filters that match nothing read every job: the slowest answer a search can give.
        for query in ["state=running", "owner=nobody-has-this", "label=gpu%3D1", "q=no-such-text", "q=echo"] {
            let path = "/v1/jobs?limit=50&" + query
            let times = try (0..<3).map { _ in
                Double(try capture("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{time_total}", url + path]))
                    ?? .nan
            }.sorted()
            print("GET \(path) among \(jobs): \(String(format: "%.0f", times[1] * 1000)) ms (median of 3, curl)")
        }
        let used = memory(of: hub.processIdentifier)
        print("hub memory after the load: RSS \(used.rss), peak RSS \(used.peak)")
    }

    /// A wrk script asking for `prefix` + a random id from the file `ids`.
    static func script(ids: String, prefix: String) -> String {
        """
        local ids = {}
        for line in io.lines("\(ids)") do ids[#ids + 1] = line end
        local threads = 0
        function setup(thread) threads = threads + 1; thread:set("seed", threads) end
        function init(args) math.randomseed(os.time() * 100 + seed) end
        function request() return wrk.format("GET", "\(prefix)" .. ids[math.random(#ids)]) end
        """
    }

    /// A wrk script paging back from a random job: `before` is a `seq`, 1 to `jobs` here.
    static func pagesScript(jobs: Int) -> String {
        """
        local threads = 0
        function setup(thread) threads = threads + 1; thread:set("seed", threads) end
        function init(args) math.randomseed(os.time() * 100 + seed) end
        function request() return wrk.format("GET", "/v1/jobs?limit=50&before=" .. math.random(2, \(max(2, jobs)))) end
        """
    }

    /// wrk, where Debian's package puts it (or a local build).
    static let wrk: String? = ["/usr/bin/wrk", "/usr/local/bin/wrk"].first { access($0, X_OK) == 0 }

    /// Starts `xn hub` on a free loopback port with `arguments`; returns it once its banner gave
    /// its address, with the rest of the banner (where its jobs run). The caller stops it.
    static func startHub(_ arguments: [String]) throws -> (hub: Process, url: String, banner: String) {
        let hub = Process()
        hub.executableURL = URL(fileURLWithPath: StartupBench.xn)
        hub.arguments = ["hub", "-p", "0", "--log-level", "error"] + arguments
        let banner = Pipe()
        hub.standardOutput = banner
        hub.standardError = FileHandle.nullDevice
        try hub.run()
        guard let (url, rest) = try bannerLine(from: banner.fileHandleForReading, within: 60) else {
            hub.terminate()
            hub.waitUntilExit()
            throw BenchError("the hub did not print its address within 60 s")
        }
        return (hub, url, rest)
    }

    /// The hub's address from its banner line.
    static func readURL(from handle: FileHandle, within seconds: Double) throws -> String? {
        try bannerLine(from: handle, within: seconds)?.url
    }

    /// The hub's address and what its banner line says after it, without the parentheses.
    static func bannerLine(from handle: FileHandle, within seconds: Double) throws -> (url: String, rest: String)? {
        let deadline = now() + seconds
        var text = ""
        while now() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            text += String(decoding: chunk, as: UTF8.self)
            guard let range = text.range(of: "http://127\\.0\\.0\\.1:[0-9]+", options: .regularExpression),
                let lineEnd = text[range.upperBound...].firstIndex(of: "\n")
            else { continue }
            let rest = text[range.upperBound..<lineEnd].trimmingCharacters(in: .whitespaces)
            return (String(text[range]), rest.trimmingCharacters(in: CharacterSet(charactersIn: "()")))
        }
        return nil
    }

    /// VmRSS and VmHWM of `pid`, as /proc says them.
    static func memory(of pid: Int32) -> (rss: String, peak: String) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> String {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) } ?? "?"
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    /// Runs `program` to its end and returns its standard output.
    static func capture(_ program: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
