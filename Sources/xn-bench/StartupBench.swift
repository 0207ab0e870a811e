import Foundation
import Glibc

/// The client as scripts calling it in a loop see it: whole processes, timed from posix_spawn to
/// waitpid. `xn --version`, `xn run -- true` against a hub, and curl submitting the same job
/// (`?wait`, one request) beside it.
enum StartupBench {
    struct Result {
        var version: Sample
        var run: Sample
        var curl: Sample?
    }

    /// The `xn` to time: `$XN_BENCH_XN` (a packaged binary, say), else the one built beside us.
    static var xn: String {
        if let chosen = ProcessInfo.processInfo.environment["XN_BENCH_XN"], !chosen.isEmpty { return chosen }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("xn")
            .path
    }

    static func measure(hub: BenchHub, runs: Int) throws -> Result {
        let environment = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "XN_HUB=\(hub.url)"]
        // One of each first: the page cache holds the binary, as in a loop.
        _ = try timed([xn, "--version"], environment: environment, runs: 1)
        let version = try timed([xn, "--version"], environment: environment, runs: runs)
        let run = try timed([xn, "run", "--", "true"], environment: environment, runs: runs)
        let curlPath = ["/usr/bin/curl", "/usr/local/bin/curl"].first { (path: String) in access(path, X_OK) == 0 }
        let curl = try curlPath.map {
            try timed(
                [
                    $0, "-sS", "-o", "/dev/null", "-f", "-XPOST", "-H", "Content-Type: application/json", "-d",
                    #"{"command":"true"}"#, hub.url + "/v1/jobs?wait=10",
                ], environment: environment, runs: runs)
        }
        return Result(version: version, run: run, curl: curl)
    }

    /// Runs `argv` `runs` times, output to /dev/null; fails on a non-zero exit.
    static func timed(_ argv: [String], environment: [String], runs: Int) throws -> Sample {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let arguments = argv.map { strdup($0) } + [nil]
        let variables = environment.map { strdup($0) } + [nil]
        defer {
            arguments.forEach { free($0) }
            variables.forEach { free($0) }
        }
        var durations: [Double] = []
        let start = now()
        for _ in 0..<runs {
            let began = now()
            var pid: pid_t = 0
            let spawned = posix_spawn(&pid, argv[0], &actions, nil, arguments, variables)
            guard spawned == 0 else {
                throw BenchError("cannot start \(argv[0]): \(String(cString: strerror(spawned)))")
            }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            durations.append(now() - began)
            guard status == 0 else { throw BenchError("\(argv.joined(separator: " ")) exited with status \(status)") }
        }
        return Sample(durations: durations, wall: now() - start)
    }
}
