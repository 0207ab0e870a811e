import Foundation
import Glibc

/// Why a runner cannot isolate jobs; it then refuses the jobs that ask to be, never running them
/// without.
public struct SandboxUnavailable: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// Isolation by bubblewrap (`bwrap`, Debian's `bubblewrap`): an isolated job sees the machine's
/// files read-only, gets a /tmp, /var/tmp, /dev/shm and /run of its own that go with it, a PID
/// namespace where it sees only its own processes, no network but a loopback of its own (unless
/// it asks), and not the runner's data folders. bwrap drops every capability and sets
/// no_new_privs, so a set-user-ID program cannot undo any of it.
public struct Sandbox: Sendable {
    /// bwrap's path.
    public let program: String
    /// What an isolated job must not see (the hub's data folder and key files, the worker's spool
    /// and token file): a folder is covered by an empty tmpfs, a file by /dev/null.
    public let hidden: [String]

    /// Folders each isolated job gets fresh and empty (tmpfs), and loses at its end.
    static let fresh = ["/tmp", "/var/tmp", "/dev/shm", "/run"]

    init(program: String, hidden: [String]) {
        self.program = program
        self.hidden = hidden
    }

    /// bwrap from `PATH` (or /usr/bin), hiding `hidden` from the jobs; whether it can make a
    /// sandbox as the jobs' user is for `PipeExecutor.checkSandbox` to find out.
    public static func discover(
        hiding hidden: [String], path: String? = ProcessInfo.processInfo.environment["PATH"]
    ) -> Result<Sandbox, SandboxUnavailable> {
        let folders = (path ?? "").split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
        guard let program = folders.lazy.map({ $0 + "/bwrap" }).first(where: { access($0, X_OK) == 0 }) else {
            return .failure(SandboxUnavailable(description: "bwrap not found (install bubblewrap)"))
        }
        let own = FileManager.default.currentDirectoryPath
        let real = hidden.map { path in
            resolved(path)
                ?? URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: own, isDirectory: true)).standardized
                .path
        }
        return .success(Sandbox(program: program, hidden: real))
    }

    /// `path` with symbolic links and `..` resolved, when it exists.
    static func resolved(_ path: String) -> String? {
        realpath(path, nil).map { resolved in
            defer { free(resolved) }
            return String(cString: resolved)
        }
    }

    /// Whether `path` is inside one of `folders` (or is one).
    static func isInside(_ path: String, _ folders: [String]) -> Bool {
        folders.contains { path == $0 || path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
    }

    /// Whether an isolated job sees `path` as the runner does (it is not inside a folder the
    /// sandbox makes fresh, like /tmp, nor hidden).
    public func shows(_ path: String) -> Bool {
        why(hidden: path) == nil
    }

    /// Why an isolated job does not see `path` (resolved where it exists: `/var/../tmp` is /tmp),
    /// or nil.
    func why(hidden given: String) -> String? {
        let path = Self.resolved(given) ?? given
        if let folder = Self.fresh.first(where: { Self.isInside(path, [$0]) }) {
            return "an isolated job has its own empty \(folder)"
        }
        if Self.isInside(path, hidden) { return "an isolated job cannot see the runner's data folder" }
        return nil
    }

    /// Why an isolated job could not start in `workingDirectory`, or nil.
    func problem(withWorkingDirectory workingDirectory: String) -> String? {
        why(hidden: workingDirectory).map { "cwd \(workingDirectory): \($0)" }
    }

    /// bwrap's command line running `program` (a path) with `arguments` in a sandbox.
    func commandLine(
        running program: String, arguments: [String], workingDirectory: String?, isolation: Isolation
    ) -> [String] {
        var line = [self.program, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for folder in Self.fresh { line += ["--tmpfs", folder] }
        if isolation.network {
            // Where resolv.conf points on systemd machines: name lookups need it.
            line += ["--ro-bind-try", "/run/systemd/resolve", "/run/systemd/resolve"]
        }
        // One that does not exist yet (a spool made later) has nothing to hide, and bwrap could
        // not make its mount point in the read-only tree.
        for path in hidden where !Self.isInside(path, Self.fresh) {
            var info = stat()
            guard stat(path, &info) == 0 else { continue }
            line += (info.st_mode & S_IFMT) == S_IFDIR ? ["--tmpfs", path] : ["--ro-bind", "/dev/null", path]
        }
        line += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent"]
        if !isolation.network { line.append("--unshare-net") }
        line += ["--chdir", workingDirectory ?? "/"]
        return line + ["--", program] + arguments
    }

    /// The file a bare command name runs, searched in `searchPath` as execvp would; nil when
    /// there is none. Used before bwrap, so a missing program fails like it does outside.
    static func locate(_ command: String, in searchPath: String?) -> String? {
        guard !command.contains("/") else { return command }
        for folder in (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = folder + "/" + command
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }
}
