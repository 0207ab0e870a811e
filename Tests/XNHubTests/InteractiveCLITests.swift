import Foundation
import Glibc
import Synchronization
import Testing
import XNExec

/// `xn run -i/-it` and `xn attach` as a person uses them: in a real terminal (a pty the test
/// holds), with pipes, across a hub restart.
@Suite(.timeLimit(.minutes(3)))
struct InteractiveCLITests {
    /// A shell under a pty of its own, its screen collected.
    final class Terminal: Sendable {
        let process: any RunningProcess
        private let screen = Mutex<[UInt8]>([])

        init(_ script: String, environment: [String: String]) throws {
            process = try PipeExecutor().start(
                ProcessRequest(
                    command: "sh", arguments: ["-c", script], environment: environment,
                    terminal: TerminalSize(rows: 30, columns: 100)))
            let output = process.output
            Task {
                for await chunk in output { self.screen.withLock { $0 += chunk.bytes } }
            }
        }

        var text: String { String(decoding: screen.withLock { $0 }, as: UTF8.self) }

        func type(_ text: String) throws { try process.send(Array(text.utf8)) }
        func type(_ bytes: [UInt8]) throws { try process.send(bytes) }

        func waitFor(_ text: String, timeout: Duration = .seconds(20)) async throws {
            try await eventually("screen shows \(text.debugDescription)", timeout: timeout) {
                self.text.contains(text) ? true : nil
            }
        }
    }

    @Test func xnRunItIsARemoteTerminalAndTheLocalOneIsRestored() async throws {
        try await withHub { hub in
            let folder = try temporaryFolder()
            let script = """
                stty -g > \(folder)/before
                "$XN" run -it --env PS1='$ ' -- bash --norc --noprofile -i
                echo "code=$?"
                stty -g > \(folder)/after
                sleep 30
                """
            let terminal = try Terminal(script, environment: ["XN": Binaries.xn, "XN_HUB": hub.url])
            defer { terminal.process.signal(SIGKILL) }
            try await terminal.waitFor("$ ")
            try terminal.type("stty size; echo $((6*7))\r")
            try await terminal.waitFor("30 100")
            try await terminal.waitFor("42\r\n")
            // The local window changes size: xn gets SIGWINCH and the job's terminal follows.
            try terminal.process.resize(TerminalSize(rows: 41, columns: 120))
            // The job sees the new size once the resize has come through xn and the hub.
            try terminal.type("until [ \"$(stty size)\" = '41 120' ]; do sleep 0.02; done; echo resized-$((40+1))\r")
            try await terminal.waitFor("resized-41")
            // Ctrl-C goes to the remote program, not to xn: typed once the program runs.
            try terminal.type("sleep 100.3\r")
            try await waitForProcess(["sleep", "100.3"])
            try terminal.type([3])
            try terminal.type("echo back-$((1+1))\r")
            try await terminal.waitFor("back-2")
            try terminal.type("exit 3\r")
            try await terminal.waitFor("code=3")
            // stty writes one line: the file is whole once it ends with a newline.
            let after = try await eventually("stty after") { () -> String? in
                let text = try? String(contentsOfFile: folder + "/after", encoding: .utf8)
                return text?.hasSuffix("\n") == true ? text : nil
            }
            let before = try String(contentsOfFile: folder + "/before", encoding: .utf8)
            #expect(!before.isEmpty && before == after, "terminal mode after xn: \(after) (before: \(before))")
        }
    }

    /// execnode's README, as its users typed it: `xn -s "bash"`, then `xn -a ID`, `/term` to end.
    @Test func execnodeSubmitThenAttachThenTerm() async throws {
        try await withHub { hub in
            let submitted = try await runXN(["-s", "bash"], hub: hub.url)
            #expect(submitted.status == 0)
            let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try await eventually("bash running") { try await hub.state(id) == "running" ? true : nil }
            let terminal = try Terminal(
                "\"$XN\" -a \(id); echo \"code=$?\"; sleep 30", environment: ["XN": Binaries.xn, "XN_HUB": hub.url])
            defer { terminal.process.signal(SIGKILL) }
            // The terminal echoes the line as typed; only bash prints the product.
            try terminal.type("echo $((6*7))\r")
            try await terminal.waitFor("42\r\n")
            try terminal.type("/term\r")
            try await terminal.waitFor("code=130")
            #expect(try await hub.state(id) == "canceled")
        }
    }

    @Test func attachReplaysDetachesWithCtrlBracketAndLeavesTheJobRunning() async throws {
        try await withHub { hub in
            let id = try await hub.submit(
                #"{"command":"bash","args":["--norc","--noprofile","-i"],"env":{"PS1":"$ "},"tty":true}"#)
            let first = try Terminal(
                #""$XN" attach "$JOB"; echo "code=$?"; sleep 30"#,
                environment: ["XN": Binaries.xn, "XN_HUB": hub.url, "JOB": id])
            defer { first.process.signal(SIGKILL) }
            try await first.waitFor("$ ")
            try first.type("echo mark-$((5*5))\r")
            try await first.waitFor("mark-25")
            try first.type([0x1d])
            try await first.waitFor("code=0")
            #expect(first.text.contains("detached from job"))
            #expect(try await hub.state(id) == "running")
            // Later, from elsewhere: the replay shows what happened before.
            let second = try Terminal(
                #""$XN" attach "$JOB"; echo "code=$?"; sleep 30"#,
                environment: ["XN": Binaries.xn, "XN_HUB": hub.url, "JOB": id])
            defer { second.process.signal(SIGKILL) }
            try await second.waitFor("mark-25")
            try second.type("exit 6\r")
            try await second.waitFor("code=6")
            #expect(second.text.contains("failed (exit 6)"))
            // A finished job: its output and how it ended.
            let after = try await runXN(["attach", id], hub: hub.url)
            #expect(after.status == 6)
            #expect(after.stdout.contains("mark-25"))
            #expect(after.stderr.contains("failed (exit 6)"))
        }
    }

    @Test func pipedInputReachesAnInteractiveJobAndSlashTermEndsOne() async throws {
        try await withHub { hub in
            let sum = try await runXN(
                ["run", "-i", "--", "sh", "-c", "read a; echo $(($a))"], hub: hub.url, stdin: "40+2\n")
            #expect(sum.status == 0)
            #expect(sum.stdout == "42\n")
            let id = try await hub.submit(#"{"command":"sleep","args":["60"]}"#)
            try await eventually("running") { try await hub.state(id) == "running" ? true : nil }
            let term = try await runXN(["attach", id], hub: hub.url, stdin: "/term\n")
            #expect(term.status == 130)
            #expect(try await hub.state(id) == "canceled")
        }
    }

    @Test func anAttachedClientResumesAcrossAHubRestartWithNothingLostOrRepeated() async throws {
        let data = try temporaryFolder()
        let options = ["--no-local", "--heartbeat-timeout", "5"]
        let first = try await HubProcess.start(data: data, options)
        defer { first.killNow() }
        let worker = try WorkerFailureTests.workerProcess(first.url, name: "steady")
        defer { worker.signal(SIGKILL) }
        try await eventually("worker connected") { () -> Bool? in
            let list = try await first.get("/v1/workers").object()["workers"] as? [[String: Any]]
            return list?.isEmpty == false ? true : nil
        }
        let id = try await first.submit(
            #"{"command":"sh","args":["-c","i=1; while [ $i -le 40 ]; do echo line-$i; i=$((i+1)); sleep 0.1; done; exit 9"]}"#
        )
        let client = try ChildProcess(Binaries.xn, ["attach", id], environment: ["XN_HUB": first.url])
        defer { client.signal(SIGKILL) }
        try await eventually("some lines attached") { client.stdoutText.contains("line-5\n") ? true : nil }
        first.child.signal(SIGKILL)
        _ = try await first.child.exitStatus()
        try await Task.sleep(for: .milliseconds(500))
        let port = URL(string: first.url)!.port!
        let second = try await HubProcess.start(data: data, options + ["-p", String(port)])
        defer { second.killNow() }
        #expect(try await client.exitStatus(timeout: .seconds(60)) == 9)
        let expected = (1...40).map { "line-\($0)\n" }.joined()
        #expect(client.stdoutText == expected)
        #expect(client.stderrText.contains("reconnecting"))
        worker.signal(SIGTERM)
        _ = try? await worker.exitStatus(timeout: .seconds(20))
    }
}
