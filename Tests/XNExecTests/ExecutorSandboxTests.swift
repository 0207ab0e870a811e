import Foundation
import Glibc
import Testing
import XNExec
import XNProtocol

/// Isolated processes (bubblewrap): the system read-only, a /tmp of their own that goes with
/// them, their own processes only, no network but their own loopback, and not the runner's data.
/// CI installs bubblewrap and runs as root; elsewhere these run where bwrap is installed.
@Suite(
    "JobExecutor: isolation", .timeLimit(.minutes(1)),
    .enabled(if: (try? Sandbox.discover(hiding: []).get()) != nil, "needs bubblewrap"))
struct ExecutorSandboxTests {
    /// A folder the runner hides, with a file in it: in the build folder, or the home folder when
    /// the checkout is in /tmp (which an isolated job never sees anyway: the test would prove nothing).
    static func dataFolder() throws -> String {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let sandbox = try Sandbox.discover(hiding: []).get()
        let base = sandbox.shows(repo) ? repo + "/.build" : NSHomeDirectory() + "/.cache"
        let folder = base + "/xn-sandbox-test-\(UUID().uuidString)"
        try #require(sandbox.shows(folder), "\(folder) must be one an isolated job would see if not hidden")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data("secret\n".utf8).write(to: URL(fileURLWithPath: folder + "/xn.sqlite"))
        return folder
    }

    static func executor(hiding hidden: [String] = []) throws -> PipeExecutor {
        PipeExecutor(sandbox: try Sandbox.discover(hiding: hidden).get())
    }

    static func isolated(_ command: String, _ arguments: String..., network: Bool = false) -> ProcessRequest {
        var request = ProcessRequest(command: command, arguments: arguments)
        request.isolation = Isolation(network: network)
        return request
    }

    @Test("the system is read-only, /tmp is its own and goes with it, and it sees only its own processes")
    func readOnlySystemPrivateTmp() async throws {
        let executor = try Self.executor()
        let name = "xn-sandbox-\(UUID().uuidString)"
        let script = """
            touch /usr/\(name) 2>/dev/null && echo wrote /usr || echo /usr read-only
            echo left > /tmp/\(name) && ls -A /tmp
            echo pid $$
            ls /proc | grep -c '^[0-9]'
            """
        let finished = try await run(executor, Self.isolated("sh", "-c", script))
        #expect(finished.result.termination == .exited(0))
        let lines = finished.stdout.split(separator: "\n").map(String.init)
        #expect(Array(lines.prefix(3)) == ["/usr read-only", name, "pid 2"], "\(finished.stdout)")
        // bwrap's own init, the shell, and ls.
        #expect(Int(lines.last ?? "") ?? 99 <= 4, "processes seen: \(lines.last ?? "")")
        #expect(!FileManager.default.fileExists(atPath: "/usr/\(name)"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/\(name)"), "the file stayed in the job's own /tmp")
        let next = try await run(executor, Self.isolated("ls", "-A", "/tmp"))
        #expect(next.stdout == "", "the next job's /tmp is empty")
    }

    @Test("the runner's data folder and key files are hidden from an isolated job, not from others")
    func dataFolderHidden() async throws {
        let folder = try Self.dataFolder()
        let key = folder + "-key.pem"
        try Data("key\n".utf8).write(to: URL(fileURLWithPath: key))
        defer {
            try? FileManager.default.removeItem(atPath: folder)
            try? FileManager.default.removeItem(atPath: key)
        }
        let executor = try Self.executor(hiding: [folder, key])
        let script = "ls -A \(folder); cat \(folder)/xn.sqlite || echo unreadable; cat \(key); echo end"
        let hidden = try await run(executor, Self.isolated("sh", "-c", script))
        #expect(hidden.stdout == "unreadable\nend\n", "\(hidden.stdout)")
        // The same job without isolation reads them: the test would see a leak.
        let open = try await run(executor, ProcessRequest(command: "sh", arguments: ["-c", script]))
        #expect(open.stdout == "xn.sqlite\nsecret\nkey\nend\n")
    }

    @Test("no network but a loopback of its own, unless it asks")
    func network() async throws {
        let listener = try Listener()
        defer { listener.close() }
        let executor = try Self.executor()
        // bash's /dev/tcp: a program from /usr, which every sandbox shows.
        let connect = "echo > /dev/tcp/127.0.0.1/\(listener.port) && echo connected"
        let cut = try await run(executor, Self.isolated("bash", "-c", connect))
        #expect(cut.result.termination == .exited(1))
        #expect(String(decoding: cut.bytes(.stderr), as: UTF8.self).contains("Connection refused"), "\(cut.chunks)")
        let kept = try await run(executor, Self.isolated("bash", "-c", connect, network: true))
        #expect(kept.stdout == "connected\n")
    }

    @Test("a missing program fails as it does outside; a cwd the sandbox hides is refused")
    func refusals() async throws {
        let executor = try Self.executor()
        #expect(
            refusal { _ = try executor.start(Self.isolated("no-such-program-xn")) }
                == "spawn no-such-program-xn ENOENT: No such file or directory")
        var inTmp = Self.isolated("true")
        inTmp.workingDirectory = "/tmp"
        #expect(refusal { _ = try executor.start(inTmp) } == "cwd /tmp: an isolated job has its own empty /tmp")
        #expect(
            refusal { _ = try executor.start(Self.isolated("/tmp/xn-some-tool")) }
                == "spawn /tmp/xn-some-tool: an isolated job has its own empty /tmp")
    }

    @Test("a runner without bubblewrap refuses isolated jobs with its reason")
    func withoutSandbox() throws {
        let executor = PipeExecutor(withoutSandbox: "bwrap not found (install bubblewrap)")
        #expect(
            refusal { _ = try executor.start(Self.isolated("true")) }
                == "this runner cannot isolate jobs: bwrap not found (install bubblewrap)")
    }

    @Test("as nobody (bwrap in a user namespace), on a terminal, and ended with everything it started")
    func asNobodyOnATerminal() async throws {
        try #require(geteuid() == 0, "switching users needs root")
        let executor = try Self.executor()
        #expect(await executor.checkSandbox(as: ProcessIdentity.user(named: "nobody")) == nil)
        var request = Self.isolated("sh", "-c", "id -u; stty size; sleep 300.7 & wait")
        request.identity = ProcessIdentity.user(named: "nobody")
        request.terminal = TerminalSize(rows: 30, columns: 100)
        let process = try executor.start(request)
        let output = OutputCollector(process)
        #expect(await eventually { output.text(.stdout).contains("30 100") }, "\(output.text(.stdout))")
        #expect(output.text(.stdout).hasPrefix("65534"))
        #expect(await eventually { !ProcessTable.members(running: ["sleep", "300.7"]).isEmpty })
        _ = await process.terminate(grace: .milliseconds(300))
        #expect(await eventually { ProcessTable.members(running: ["sleep", "300.7"]).isEmpty })
    }
}

/// A TCP socket listening on 127.0.0.1 at an ephemeral port.
struct Listener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRNOTAVAIL) }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    func close() {
        _ = Glibc.close(fd)
    }
}
