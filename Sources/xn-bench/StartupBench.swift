import Foundation
import Glibc

/// The client as scripts calling it in a loop see it: whole processes, timed from posix_spawn to
/// waitpid. `xn --version`, `xn run -- true` against a hub, and curl submitting the same job
/// (`?wait`, one request) beside it, the two alternating.
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
        let run = [xn, "run", "--", "true"]
        let curlPath = ["/usr/bin/curl", "/usr/local/bin/curl"].first { (path: String) in access(path, X_OK) == 0 }
        guard let curlPath else {
            return Result(version: version, run: try timed(run, environment: environment, runs: runs), curl: nil)
        }
        let curl = [
            curlPath, "-sS", "-o", "/dev/null", "-f", "-XPOST", "-H", "Content-Type: application/json", "-d",
            #"{"command":"true"}"#, hub.url + "/v1/jobs?wait=10",
        ]
        // Alternating, one of each at a time: a noisy machine slows both alike.
        var runDurations: [Double] = []
        var curlDurations: [Double] = []
        let start = now()
        for _ in 0..<runs {
            runDurations += try durations(run, environment: environment, runs: 1)
            curlDurations += try durations(curl, environment: environment, runs: 1)
        }
        let wall = (now() - start) / 2
        return Result(
            version: version, run: Sample(durations: runDurations, wall: wall),
            curl: Sample(durations: curlDurations, wall: wall))
    }

    /// Runs `argv` `runs` times, output to /dev/null; fails on a non-zero exit.
    static func timed(_ argv: [String], environment: [String], runs: Int) throws -> Sample {
        let start = now()
        let taken = try durations(argv, environment: environment, runs: runs)
        return Sample(durations: taken, wall: now() - start)
    }

    /// Each run's time from posix_spawn to waitpid.
    static func durations(_ argv: [String], environment: [String], runs: Int) throws -> [Double] {
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
        var taken: [Double] = []
        for _ in 0..<runs {
            let began = now()
            var pid: pid_t = 0
            let spawned = posix_spawn(&pid, argv[0], &actions, nil, arguments, variables)
            guard spawned == 0 else {
                throw BenchError("cannot start \(argv[0]): \(String(cString: strerror(spawned)))")
            }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            taken.append(now() - began)
            guard status == 0 else { throw BenchError("\(argv.joined(separator: " ")) exited with status \(status)") }
        }
        return taken
    }
}
