import Foundation
import Glibc
import Testing
import XNExec
import XNProtocol

/// Conformance: processes under a pseudo-terminal, and live input on pipes, as `xn run -it` and
/// `xn run -i` need them.
@Suite("JobExecutor: terminals and live input", .timeLimit(.minutes(1)))
struct ExecutorTerminalTests {
    static let size = TerminalSize(rows: 24, columns: 80)

    /// An interactive bash on a terminal, without the user's startup files.
    static func bash(_ executor: any JobExecutor) throws -> any RunningProcess {
        try executor.start(
            ProcessRequest(
                command: "bash", arguments: ["--norc", "--noprofile", "-i"], environment: ["PS1": "$ "],
                terminal: size))
    }

    @Test("typed input reaches bash and its output comes back", arguments: executors)
    func typing(executor: any JobExecutor) async throws {
        let bash = try Self.bash(executor)
        let output = OutputCollector(bash)
        try bash.send(Array("echo $((6*7))\n".utf8))
        // The typed line is echoed as `echo $((6*7))`; only bash itself can write 42.
        #expect(await eventually { output.text(.stdout).contains("42\r\n") })
        try bash.send(Array("exit 3\n".utf8))
        #expect(await bash.result().termination == .exited(3))
    }

    @Test("the program sees the size sent, and the new one after a resize", arguments: executors)
    func windowSize(executor: any JobExecutor) async throws {
        let bash = try Self.bash(executor)
        let output = OutputCollector(bash)
        try bash.send(Array("stty size\n".utf8))
        #expect(await eventually { output.text(.stdout).contains("24 80") })
        try bash.resize(TerminalSize(rows: 40, columns: 100))
        try bash.send(Array("stty size\n".utf8))
        #expect(await eventually { output.text(.stdout).contains("40 100") })
        bash.closeInput()
        #expect(await bash.result(timeout: .seconds(10)) != nil)
    }

    @Test("the terminal is the controlling terminal: isatty and /dev/tty work", arguments: executors)
    func controllingTerminal(executor: any JobExecutor) async throws {
        let script =
            "import os; print(os.isatty(0), os.isatty(1), os.isatty(2)); open('/dev/tty', 'w').write('via-tty\\n')"
        let finished = try await run(
            executor, ProcessRequest(command: "python3", arguments: ["-c", script], terminal: Self.size))
        #expect(finished.result.termination == .exited(0))
        #expect(finished.stdout.contains("True True True"))
        #expect(finished.stdout.contains("via-tty"))
        #expect(finished.bytes(.stderr).isEmpty)
    }

    @Test("Ctrl-C interrupts the foreground command, not the shell", arguments: executors)
    func interrupt(executor: any JobExecutor) async throws {
        let bash = try Self.bash(executor)
        let output = OutputCollector(bash)
        try bash.send(Array("sleep 100.4\n".utf8))
        // Ctrl-C once the command runs: sent earlier, it would meet bash at its prompt.
        #expect(await eventually { !ProcessTable.members(running: ["sleep", "100.4"]).isEmpty })
        try bash.send([3])
        try bash.send(Array("echo still-$((1+1))\n".utf8))
        #expect(await eventually { output.text(.stdout).contains("still-2") })
        #expect(await bash.result(timeout: .milliseconds(100)) == nil)
        bash.closeInput()  // Ctrl-D: bash exits
        #expect(await bash.result(timeout: .seconds(10))?.termination == .exited(0))
    }

    @Test("terminating a terminal job ends its shell's background jobs too", arguments: executors)
    func terminateEndsTheSession(executor: any JobExecutor) async throws {
        let bash = try Self.bash(executor)
        let output = OutputCollector(bash)
        try bash.send(Array("sleep 300 & echo bg=$!\r".utf8))
        var pid: Int32?
        _ = await eventually {
            let text = output.text(.stdout)
            guard let range = text.range(of: "bg=", options: .backwards) else { return false }
            pid = Int32(text[range.upperBound...].prefix { $0.isNumber })
            return pid != nil
        }
        let background = try #require(pid)
        #expect(await eventually { isAlive(background, marker: "sleep") })
        _ = await bash.terminate(grace: .seconds(2))
        #expect(await eventually { !isAlive(background, marker: "sleep") })
    }

    @Test("with stdin kept open, input is written as it is sent and closing it ends the reader", arguments: executors)
    func liveInputOnPipes(executor: any JobExecutor) async throws {
        let cat = try executor.start(TestTask.request("cat", keepsInputOpen: true))
        let output = OutputCollector(cat)
        try cat.send(Array("one\n".utf8))
        #expect(await eventually { output.text(.stdout) == "one\n" })
        try cat.send(Array("two\n".utf8))
        #expect(await eventually { output.text(.stdout) == "one\ntwo\n" })
        cat.closeInput()
        #expect(await cat.result(timeout: .seconds(10))?.termination == .exited(0))
        #expect(throws: InputError.closed) { try cat.send([1]) }
    }

    @Test(
        "input to a closed stdin or a finished process, or a resize without a terminal, is refused",
        arguments: executors)
    func refusals(executor: any JobExecutor) async throws {
        let plain = try executor.start(TestTask.request("sleep", "0.2"))
        #expect(throws: InputError.closed) { try plain.send(Array("x".utf8)) }
        #expect(throws: InputError.notATerminal) { try plain.resize(Self.size) }
        #expect(await plain.result(timeout: .seconds(10)) != nil)
        let bash = try Self.bash(executor)
        // Its prompt and echo are read: unread output holds a process's end back once a few
        // chunks wait (this hung when bash wrote them in more chunks than wait unread).
        _ = OutputCollector(bash)
        try bash.send(Array("exit\n".utf8))
        #expect(await bash.result(timeout: .seconds(10)) != nil)
        #expect(throws: InputError.closed) { try bash.send(Array("x".utf8)) }
        #expect(throws: InputError.closed) { try bash.resize(Self.size) }
    }
}
