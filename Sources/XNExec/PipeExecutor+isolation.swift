import Foundation
import Glibc
import XNProtocol

/// Isolated processes: the request rewritten to run under bubblewrap (`Sandbox`), and the trial
/// run that tells a runner at start whether it can isolate at all.
extension PipeExecutor {
    /// Whether isolated jobs can start here as `identity` (bwrap needs user namespaces when it
    /// is not root): runs `true` in a sandbox and says why not when it fails.
    public func checkSandbox(as identity: ProcessIdentity?) async -> SandboxUnavailable? {
        guard sandbox != nil else { return SandboxUnavailable(description: withoutSandbox) }
        var request = ProcessRequest(command: "true", outputLimit: 4096)
        request.identity = identity
        request.isolation = Isolation()
        request.baseEnvironment = ["PATH": "/usr/local/bin:/usr/bin:/bin"]
        let process: any RunningProcess
        do {
            process = try start(request)
        } catch {
            return SandboxUnavailable(description: error.description)
        }
        let output = process.output
        async let said: [UInt8] = {
            var bytes: [UInt8] = []
            for await chunk in output where chunk.stream == .stderr { bytes += chunk.bytes }
            return bytes
        }()
        guard let result = await process.result(timeout: .seconds(10)) else {
            _ = await process.terminate(grace: .zero)
            _ = await said
            return SandboxUnavailable(description: "bwrap did not finish a trial run within 10 s")
        }
        guard result.termination != .exited(0) else { return nil }
        let reason = String(decoding: await said, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return SandboxUnavailable(
            description: "bwrap cannot make a sandbox here: " + (reason.isEmpty ? "\(result.termination)" : reason))
    }

    /// The request run by bwrap in a sandbox. The program is looked up first, so a missing one
    /// fails as it does outside (`spawn foo ENOENT`), not as bwrap's exit status 1.
    func isolated(_ request: ProcessRequest, _ isolation: Isolation) throws(SpawnError) -> ProcessRequest {
        guard let sandbox else {
            throw SpawnError(code: ENOTSUP, description: "this runner cannot isolate jobs: \(withoutSandbox)")
        }
        var wrapped = request
        let searchPath =
            request.environment["PATH"] ?? (request.baseEnvironment ?? ProcessInfo.processInfo.environment)["PATH"]
        guard let program = Sandbox.locate(request.command, in: searchPath) else {
            throw Self.spawnFailure(request, ENOENT)
        }
        if let hidden = sandbox.why(hidden: program) {
            throw SpawnError(code: ENOENT, description: "spawn \(request.command): \(hidden)")
        }
        var workingDirectory = request.workingDirectory
        if let cwd = workingDirectory, let problem = sandbox.problem(withWorkingDirectory: cwd) {
            throw SpawnError(code: ENOENT, description: problem)
        }
        if workingDirectory == nil {
            // The runner's own, as for other jobs, where the sandbox shows it.
            let own = FileManager.default.currentDirectoryPath
            workingDirectory = sandbox.problem(withWorkingDirectory: own) == nil ? own : "/"
        }
        let line = sandbox.commandLine(
            running: program, arguments: request.arguments, workingDirectory: workingDirectory, isolation: isolation)
        wrapped.command = line[0]
        wrapped.arguments = Array(line.dropFirst())
        wrapped.isolation = nil
        return wrapped
    }
}
