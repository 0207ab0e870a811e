import Foundation
import Glibc

/// A child process of the test with its output in files, waited on with a deadline.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws
    {
        let folder = try temporaryFolder()
        stdoutPath = folder + "/stdout"
        stderrPath = folder + "/stderr"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        if let stdin {
            let input = folder + "/stdin"
            _ = FileManager.default.createFile(atPath: input, contents: Data(stdin.utf8))
            process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: input))
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
    }

    var stdout: [UInt8] { (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: stdoutPath)))) ?? [] }
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The exit status once the process ends, failing after `timeout`.
    func exitStatus(timeout: Duration = .seconds(30)) async throws -> Int32 {
        try await eventually("\(process.executableURL?.lastPathComponent ?? "process") to exit", timeout: timeout) {
            process.isRunning ? nil : process.terminationStatus
        }
    }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }
}

/// Runs the built `xn` with `arguments` and returns its exit status and output.
func runXN(
    _ arguments: [String], hub: String? = nil, stdin: String? = nil, environment: [String: String] = [:],
    timeout: Duration = .seconds(30)
) async throws -> (status: Int32, stdout: String, stderr: String, bytes: [UInt8]) {
    var environment = environment
    if let hub { environment["XN_HUB"] = hub }
    let child = try ChildProcess(Binaries.xn, arguments, environment: environment, stdin: stdin)
    let status = try await child.exitStatus(timeout: timeout)
    return (status, child.stdoutText, child.stderrText, child.stdout)
}

/// `xn hub` as its own process, on a free port and a data folder that outlives it.
final class HubProcess: Sendable {
    let child: ChildProcess
    let url: String
    let dataFolder: String

    private init(child: ChildProcess, url: String, dataFolder: String) {
        self.child = child
        self.url = url
        self.dataFolder = dataFolder
    }

    /// `asRoot`: jobs run as root when the tests do (most tests write to folders only root may use);
    /// false leaves the hub's default (nobody, when started as root).
    /// `launcher`: a command line the hub is started through (it ends by running its arguments).
    static func start(
        data: String, _ extra: [String] = [], asRoot: Bool = true, environment: [String: String] = [:],
        launcher: [String] = []
    ) async throws -> HubProcess {
        let user = asRoot && geteuid() == 0 ? ["--allow-root"] : []
        let command =
            launcher + [Binaries.xn, "hub", "-p", "0", "--data", data, "--log-level", "warning"] + user + extra
        let child = try ChildProcess(command[0], Array(command.dropFirst()), environment: environment)
        let url = try await eventually("hub banner", timeout: .seconds(20)) { () -> String? in
            if !child.process.isRunning {
                throw TestFailure("hub exited: \(child.stderrText)")
            }
            guard let line = child.stdoutText.split(separator: "\n").first(where: { $0.contains("listening on") }),
                let range = line.range(of: "https?://[^ ]+", options: .regularExpression)
            else { return nil }
            return String(line[range])
        }
        return HubProcess(child: child, url: url, dataFolder: data)
    }

    /// SIGKILL without waiting: for `defer`, so a failing test leaves no hub behind.
    func killNow() {
        if child.process.isRunning { child.signal(SIGKILL) }
    }

    /// Stops the hub for good at the end of a test, whatever state it is in.
    func kill() async {
        if child.process.isRunning {
            child.signal(SIGKILL)
            _ = try? await child.exitStatus(timeout: .seconds(10))
        }
    }
}

/// Kills processes a killed hub left behind, found by a marker in their arguments.
func killStragglers(_ marker: String) {
    _ = try? matchProcesses("pkill", ["-KILL", "-f", marker])
}

/// Whether a process with `marker` in its arguments is running.
func processRuns(_ marker: String) throws -> Bool {
    try matchProcesses("pgrep", ["-f", marker]) == 0
}

/// Runs procps's `pgrep` or `pkill` quietly; its exit status (0: some process matched).
private func matchProcesses(_ tool: String, _ arguments: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/" + tool)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}
