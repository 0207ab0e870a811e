import CXNSystem
import Foundation
import Glibc

/// Runs processes with stdin, stdout and stderr on pipes, each in its own process group; or, when
/// the request asks for a terminal, on a pseudo-terminal in a session of their own.
public struct PipeExecutor: JobExecutor {
    /// Where each process gets a control group of its own; nil runs them without.
    public let cgroups: CgroupHost?
    /// Why there are no cgroups, for the refusal of a job that needs one.
    let withoutCgroups: String
    /// What isolates the processes that ask to be; nil refuses them.
    public let sandbox: Sandbox?
    /// Why there is no sandbox, for the refusal of a job that asks for one.
    let withoutSandbox: String

    public init(
        cgroups: CgroupHost? = nil, withoutCgroups: String = "it was given none", sandbox: Sandbox? = nil,
        withoutSandbox: String = "it was given no sandbox"
    ) {
        self.cgroups = cgroups
        self.withoutCgroups = withoutCgroups
        self.sandbox = sandbox
        self.withoutSandbox = withoutSandbox
        // A job closing its stdin early must give us EPIPE, not kill the runner.
        Glibc.signal(SIGPIPE, SIG_IGN)
    }

    public func start(_ request: ProcessRequest) throws(SpawnError) -> any RunningProcess {
        var request = request
        if cgroups == nil { try refuseWithoutCgroup(request) }
        if let isolation = request.isolation { request = try isolated(request, isolation) }
        // One tag names both the marker and the cgroup.
        if request.tag == nil { request.tag = "run-" + String(UInt64.random(in: .min ... .max), radix: 16) }
        let group = try makeGroup(&request)
        do {
            return try start(request, in: group)
        } catch {
            group?.remove()
            throw error
        }
    }

    /// A job asking for a limit only a cgroup holds is refused rather than run with less.
    private func refuseWithoutCgroup(_ request: ProcessRequest) throws(SpawnError) {
        if let limit = request.limitsNeedingCgroup.first {
            throw SpawnError(
                code: ENOTSUP,
                description: "\(limit) needs a cgroup of the job's own, and this runner has none: \(withoutCgroups)")
        }
        if request.limits.cpuPercent != nil {
            throw SpawnError(
                code: ENOTSUP, description: "a CPU share needs a cgroup, and this runner has none: \(withoutCgroups)")
        }
    }

    /// The request's control group, with memory and processes limited there (for the whole job,
    /// swap included; a fork beyond fails whoever else runs as the same user) instead of per
    /// process (RLIMIT_AS, RLIMIT_NPROC per user), and its CPU share.
    private func makeGroup(_ request: inout ProcessRequest) throws(SpawnError) -> JobCgroup? {
        guard let cgroups else { return nil }
        let limits = CgroupLimits(
            memoryBytes: request.limits.addressSpaceBytes, processes: request.limits.processes,
            cpuPercent: request.limits.cpuPercent)
        request.limits.addressSpaceBytes = nil
        request.limits.processes = nil
        request.limits.cpuPercent = nil
        return try cgroups.makeGroup(request.tag ?? "", limits: limits)
    }

    private func start(_ request: ProcessRequest, in group: JobCgroup?) throws(SpawnError) -> any RunningProcess {
        let reactor = try ProcessReactor.shared.get()
        if let cwd = request.workingDirectory {
            var info = stat()
            if stat(cwd, &info) != 0 {
                throw SpawnError(code: errno, description: "cwd \(cwd): \(String(cString: strerror(errno)))")
            }
            if (info.st_mode & S_IFMT) != S_IFDIR {
                throw SpawnError(code: ENOTDIR, description: "cwd \(cwd): not a directory")
            }
        }
        if let size = request.terminal {
            return try startOnTerminal(request, size: size, group: group, reactor: reactor)
        }
        let stdin = try Pipe.make()
        let stdout: Pipe
        let stderr: Pipe
        do {
            stdout = try Pipe.make()
            stderr = try Pipe.make()
        } catch {
            stdin.closeBoth()
            throw error
        }
        var pid: pid_t = 0
        let marker = Self.marker(request)
        let rc = withCStrings([request.command] + request.arguments) { argv in
            withCStrings(mergedEnvironment(request) + [marker]) { envp in
                spawn(
                    request, argv: argv, envp: envp, stdin: stdin.read, stdout: stdout.write,
                    stderr: stderr.write, group: group, pid: &pid)
            }
        }
        close(stdin.read)
        close(stdout.write)
        close(stderr.write)
        if rc != 0 {
            close(stdin.write)
            close(stdout.read)
            close(stderr.read)
            throw Self.spawnFailure(request, rc)
        }
        let initial = request.standardInput ?? []
        // Without input to give, stdin is closed at once. Live input without an eventfd for it
        // (the process runs already) degrades to the initial input alone.
        var input: InputQueue?
        if initial.isEmpty && !request.keepsInputOpen {
            close(stdin.write)
        } else {
            input = InputQueue(fd: stdin.write, initial: initial, live: request.keepsInputOpen, isTerminal: false)
        }
        return PipeProcess(
            reactor: reactor, pid: pid, stdout: stdout.read, stderr: stderr.read, input: input,
            outputLimit: request.outputLimit,
            marker: marker, cgroup: group, show: request.showOutput)
    }

    private func startOnTerminal(
        _ request: ProcessRequest, size: TerminalSize, group: JobCgroup?, reactor: ProcessReactor
    ) throws(SpawnError) -> any RunningProcess {
        var master: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        var rc = xn_open_terminal(size.rows, size.columns, &master, &name, name.count)
        if rc != 0 {
            throw SpawnError(code: rc, description: "cannot open a terminal: \(String(cString: strerror(rc)))")
        }
        let path = name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        // Held open until the child has its own: a master whose slave nobody holds reads EIO.
        let slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        let stdin = fcntl(master, F_DUPFD_CLOEXEC, 0)
        let control = fcntl(master, F_DUPFD_CLOEXEC, 0)
        guard slave >= 0, stdin >= 0, control >= 0 else {
            let failure = SpawnError(
                code: errno, description: "cannot open terminal \(path): \(String(cString: strerror(errno)))")
            for fd in [slave, stdin, control, master] where fd >= 0 { close(fd) }
            throw failure
        }
        let input = InputQueue(fd: stdin, initial: request.standardInput ?? [], live: true, isTerminal: true)
        guard input.isLive else {
            let failure = SpawnError(code: errno, description: "eventfd: \(String(cString: strerror(errno)))")
            input.markClosed()
            for fd in [slave, control, master] { close(fd) }
            throw failure
        }
        let marker = Self.marker(request)
        var environment = mergedEnvironment(request) + [marker]
        if !environment.contains(where: { $0.hasPrefix("TERM=") }) { environment.append("TERM=xterm-256color") }
        var pid: pid_t = 0
        rc = withCStrings([request.command] + request.arguments) { argv in
            withCStrings(environment) { envp in
                spawn(
                    request, argv: argv, envp: envp, stdin: -1, stdout: -1, stderr: -1, terminal: path, group: group,
                    pid: &pid)
            }
        }
        close(slave)
        if rc != 0 {
            for fd in [control, master] { close(fd) }
            input.markClosed()
            throw Self.spawnFailure(request, rc)
        }
        return PipeProcess(
            reactor: reactor, pid: pid, stdout: master, stderr: -1, input: input, outputLimit: request.outputLimit,
            terminal: control, marker: marker, cgroup: group, show: request.showOutput)
    }

    /// Why the spawn failed, Node-style (`spawn python3 EACCES: Permission denied`), naming the user
    /// the job was to run as when it is not the runner's own: who may run a file depends on it.
    static func spawnFailure(_ request: ProcessRequest, _ rc: Int32) -> SpawnError {
        var description = "spawn \(request.command) \(errnoName(rc)): \(String(cString: strerror(rc)))"
        if let identity = request.identity { description += " (as user \(identity.name))" }
        return SpawnError(code: rc, description: description)
    }

    /// `XN_JOB_ID=…` for the process and everything it starts.
    private static func marker(_ request: ProcessRequest) -> String {
        "\(ProcessTable.markerName)=\(request.tag ?? "")"
    }

    /// posix_spawn when nothing more is asked; our own vfork path to also set limits, a user or
    /// a control group.
    private func spawn(
        _ request: ProcessRequest, argv: UnsafePointer<UnsafeMutablePointer<CChar>?>,
        envp: UnsafePointer<UnsafeMutablePointer<CChar>?>, stdin: Int32, stdout: Int32, stderr: Int32,
        terminal: String? = nil, group: JobCgroup?, pid: inout pid_t
    ) -> Int32 {
        let searchPath: Int32 = request.command.utf8.contains(UInt8(ascii: "/")) ? 0 : 1
        guard request.identity != nil || !request.limits.isEmpty || group != nil else {
            return xn_spawn(
                request.command, argv, envp, request.workingDirectory, stdin, stdout, stderr, terminal, searchPath,
                &pid)
        }
        let wanted: [(Int32, Int?)] = [
            (xn_rlimit_cpu, request.limits.cpuSeconds),
            (xn_rlimit_as, request.limits.addressSpaceBytes),
            (xn_rlimit_nofile, request.limits.openFiles),
            (xn_rlimit_nproc, request.limits.processes),
        ]
        let limits = wanted.compactMap { resource, value in
            value.map { xn_limit(resource: resource, value: UInt(max(0, $0))) }
        }
        let identity = request.identity
        let groups = identity?.groups ?? []
        let joins: [Int32]
        do {
            joins = try group?.joinDescriptors() ?? []
        } catch {
            return error.code
        }
        defer { for fd in joins { close(fd) } }
        return limits.withUnsafeBufferPointer { buffer in
            groups.withUnsafeBufferPointer { groups in
                joins.withUnsafeBufferPointer { joins in
                    xn_spawn_as(
                        request.command, argv, envp, request.workingDirectory, stdin, stdout, stderr, terminal,
                        identity == nil ? 0 : 1, identity?.uid ?? 0, identity?.gid ?? 0, groups.baseAddress,
                        Int32(groups.count), buffer.baseAddress, Int32(buffer.count), joins.baseAddress,
                        Int32(joins.count), &pid)
                }
            }
        }
    }
}

/// Both ends of a pipe, close-on-exec.
struct Pipe {
    var read: Int32
    var write: Int32

    /// What a new pipe holds on Linux.
    static let defaultCapacity = 64 << 10

    static func make() throws(SpawnError) -> Pipe {
        var fds: [Int32] = [-1, -1]
        let rc = xn_pipe_cloexec(&fds)
        if rc != 0 {
            throw SpawnError(code: rc, description: "pipe: \(String(cString: strerror(rc)))")
        }
        return Pipe(read: fds[0], write: fds[1])
    }

    /// Makes the pipe of `fd` hold `bytes` where the system allows; else it keeps what it holds
    /// (an unprivileged user's pipes may not grow past `/proc/sys/fs/pipe-max-size`).
    static func grow(_ fd: Int32, to bytes: Int) {
        _ = xn_pipe_grow(fd, Int32(bytes))
    }

    func closeBoth() {
        close(read)
        close(write)
    }
}

/// The request's base environment (else the runner's) with its variables on top, as KEY=VALUE
/// strings (without `XN_JOB_ID`: the marker is the executor's).
func mergedEnvironment(_ request: ProcessRequest) -> [String] {
    var merged = request.baseEnvironment ?? ProcessInfo.processInfo.environment
    for (key, value) in request.environment {
        merged[key] = value
    }
    merged[ProcessTable.markerName] = nil
    return merged.map { "\($0.key)=\($0.value)" }
}

/// Calls `body` with a NULL-terminated C array of copies of `strings`.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Node-style names for the errors a spawn usually meets, so `err` reads like http-runner's.
func errnoName(_ code: Int32) -> String {
    switch code {
    case ENOENT: "ENOENT"
    case EACCES: "EACCES"
    case ENOEXEC: "ENOEXEC"
    case ENOTDIR: "ENOTDIR"
    case E2BIG: "E2BIG"
    case ENOMEM: "ENOMEM"
    case EAGAIN: "EAGAIN"
    case EPERM: "EPERM"
    default: "errno \(code)"
    }
}
