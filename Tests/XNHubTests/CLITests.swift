import Foundation
import Glibc
import Testing

/// The `xn` client as a built binary against a real hub: exit codes, output, `--json`, job files.
@Suite(.timeLimit(.minutes(2)))
struct CLITests {
    @Test func aHubRefusesAPublicInterfaceWithoutAuthUnlessToldLoudly() async throws {
        let data = try temporaryFolder()
        let refused = try await runXN(["hub", "-i", "0.0.0.0", "-p", "0", "--data", data])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("refusing to listen on 0.0.0.0 without authentication"))
        #expect(refused.stderr.contains("--insecure-no-auth"))
        // (Starting one on a public interface with the flag is left out: tests bind to loopback only.)
        for loopback in ["127.0.0.2", "localhost"] {
            let hub = try ChildProcess(
                Binaries.xn, ["hub", "-i", loopback, "-p", "0", "--data", try temporaryFolder()])
            defer { hub.signal(SIGKILL) }
            try await eventually("hub on \(loopback)") {
                hub.stdoutText.contains("listening on") ? true : (hub.process.isRunning ? nil : false)
            }
            #expect(hub.stdoutText.contains("listening on"), "\(loopback): \(hub.stderrText)")
        }
    }

    @Test func whitelistEntriesMustBeNamesOrAbsolutePaths() async throws {
        let refused = try await runXN(["hub", "-p", "0", "--data", try temporaryFolder(), "-w", "echo,./sh"])
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("-w ./sh: whitelist entries are bare names or absolute paths"))
        let loader = try await runXN(
            ["hub", "-p", "0", "--data", try temporaryFolder(), "-w", "echo", "--allow-env", "BUILD_ID,LD_PRELOAD"])
        #expect(loader.status == 64)
        #expect(loader.stderr.contains("--allow-env LD_PRELOAD: a job may never set it under a whitelist"))
    }

    @Test func runPrintsTheOutputAndExitsWithTheJobsCode() async throws {
        try await withHub { hub in
            let ok = try await runXN(["run", "--", "sh", "-c", "echo out; echo err >&2"], hub: hub.url)
            #expect(ok.status == 0)
            #expect(ok.stdout == "out\n")
            #expect(ok.stderr == "err\n")
            let three = try await runXN(["run", "--hub", hub.url, "--", "sh", "-c", "exit 3"])
            #expect(three.status == 3)
            let missing = try await runXN(["run", "--", "no-such-command-xn"], hub: hub.url)
            #expect(missing.status == 127)
            #expect(missing.stderr.contains("ENOENT"))
            let slow = try await runXN(["run", "--timeout", "0.5", "--", "sleep", "30"], hub: hub.url)
            #expect(slow.status == 124)
            #expect(slow.stderr.contains("timed out"))
            let binary = try await runXN(["run", "--", Binaries.testtask, "bytes", "100000", "5"], hub: hub.url)
            #expect(binary.bytes == generatedBytes(count: 100_000, seed: 5))
            let input = try await runXN(["run", "--stdin-file", "-", "--", "cat"], hub: hub.url, stdin: "piped\n")
            #expect(input.stdout == "piped\n")
        }
    }

    @Test func submitListShowLogsAndCancel() async throws {
        try await withHub { hub in
            let submitted = try await runXN(
                ["submit", "--name", "greeting", "--env", "WHO=xn", "--", "sh", "-c", "echo hello $WHO"], hub: hub.url)
            #expect(submitted.status == 0)
            let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(id.count == 40)
            _ = try await hub.ended(id)
            let logs = try await runXN(["logs", id], hub: hub.url)
            #expect(logs.stdout == "hello xn\n")
            let show = try await runXN(["show", id], hub: hub.url)
            #expect(show.stdout.contains("state:") && show.stdout.contains("succeeded"))
            #expect(show.stdout.contains("greeting"))
            let json = try await runXN(["list", "--json"], hub: hub.url)
            let jobs = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
            #expect(jobs.first?["id"] as? String == id)
            #expect(jobs.first?["state"] as? String == "succeeded")
            let table = try await runXN(["list"], hub: hub.url)
            #expect(table.stdout.hasPrefix("ID"))
            #expect(table.stdout.contains(id))

            let sleeper = try await runXN(["submit", "--", "sleep", "30"], hub: hub.url)
            let sleeperID = sleeper.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let canceled = try await runXN(["cancel", sleeperID], hub: hub.url)
            #expect(canceled.status == 0)
            #expect(canceled.stdout.contains("canceled"))
            let twice = try await runXN(["cancel", sleeperID], hub: hub.url)
            #expect(twice.status == 1)
            #expect(twice.stderr.contains("already ended"))
        }
    }

    @Test func listFindsJobsByLabelAndText() async throws {
        try await withHub { hub in
            let gpu = try await hub.submit(#"{"command":"echo","args":["frame 7"],"labels":{"gpu":"1","zone":"eu"}}"#)
            let other = try await hub.submit(#"{"command":"echo","args":["nightly backup"],"labels":{"zone":"eu"}}"#)
            func ids(_ arguments: [String]) async throws -> [String] {
                let result = try await runXN(["list", "--json"] + arguments, hub: hub.url)
                #expect(result.status == 0, "\(arguments): \(result.stderr)")
                let jobs = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
                return (jobs ?? []).compactMap { $0["id"] as? String }
            }
            #expect(try await ids(["--label", "zone=eu", "--label", "gpu=1"]) == [gpu])
            #expect(try await ids(["--label", "zone=eu"]) == [other, gpu])
            #expect(try await ids(["--text", "nightly"]) == [other])
            #expect(try await ids(["--owner", "nobody-has-this-name"]).isEmpty)
            let bad = try await runXN(["list", "--label", "zone"], hub: hub.url)
            #expect(bad.status == 64 && bad.stderr.contains("expected key=value"))
        }
    }

    @Test func ctrlCOnRunCancelsTheJob() async throws {
        try await withHub { hub in
            let child = try ChildProcess(Binaries.xn, ["run", "--", "sleep", "30"], environment: ["XN_HUB": hub.url])
            defer { if child.process.isRunning { child.signal(SIGKILL) } }
            let id = try await eventually("job running") { () -> String? in
                let jobs = try await hub.get("/v1/jobs?state=running").object()["jobs"] as? [[String: Any]]
                return jobs?.first?["id"] as? String
            }
            child.signal(SIGINT)
            #expect(try await child.exitStatus() == 130)
            #expect(child.stderrText.contains("canceling job \(id)"))
            #expect(try await hub.state(id) == "canceled")
        }
    }

    @Test func execnodeFlagsStillWork() async throws {
        try await withHub { hub in
            let submitted = try await runXN(["-s", "echo from execnode"], hub: hub.url)
            #expect(submitted.status == 0)
            let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            _ = try await hub.ended(id)
            let listed = try await runXN(["-l"], hub: hub.url)
            #expect(listed.stdout.contains(id))
            let fetched = try await runXN(["-f", id], hub: hub.url)
            #expect(fetched.status == 0)
            #expect(fetched.stdout.contains("succeeded"))
            #expect(fetched.stdout.hasSuffix("from execnode\n"))
            // -f on a running job: what it wrote so far, and that it still runs.
            let running = try await hub.submit(
                #"{"command":"sh","args":["-c","echo partial; cat"],"interactive":true}"#)
            try await eventually("first output") {
                try await hub.get("/v1/jobs/\(running)").object()["stdout_bytes"] as? Int == 8 ? true : nil
            }
            let partial = try await runXN(["-f", running], hub: hub.url)
            #expect(partial.status == 0)
            #expect(partial.stdout.hasSuffix("partial\n"))
            #expect(partial.stderr.contains("job \(running) is still running: this is its output so far"))
            #expect(try await hub.post("/v1/jobs/\(running)/cancel", "").status == 200)
            #expect(try await runXN(["--help"]).stdout.contains("-a <id>"))
        }
    }

    @Test func withLogFormatJSONEveryLogLineIsOneObject() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder(), ["--log-format", "json"])
        defer { hub.killNow() }
        let id = try await hub.submit(#"{"command":"true"}"#)
        let audit = try await eventually("the audit line of the submit") { () -> [String: Any]? in
            hub.child.stderrText.split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .first { $0["message"] as? String == "audit: submit" && $0["job"] as? String == id }
        }
        #expect(audit["level"] as? String == "notice")
        #expect(audit["command"] as? String == "true")
        #expect(audit["logger"] as? String == "xn.hub")
        let time = try #require(audit["time"] as? String)
        #expect(time.hasSuffix("Z") && time.contains("T") && time.contains("."), "\(time)")
        let lines = hub.child.stderrText.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "\(line)")
        }
        await hub.kill()
    }

    @Test func jobFilesSubmitEveryJobOrNone() async throws {
        try await withHub { hub in
            let folder = try temporaryFolder()
            let yaml = folder + "/jobs.yaml"
            try """
            - command: echo
              args: [one]
              name: first
            - command: sh
              args: ["-c", "echo $A"]
              env: {A: two}
              timeout: 30
            """.write(toFile: yaml, atomically: true, encoding: .utf8)
            let result = try await runXN(["submit", yaml], hub: hub.url)
            #expect(result.status == 0)
            let ids = result.stdout.split(separator: "\n").map(String.init)
            #expect(ids.count == 2)
            #expect(try await hub.ended(ids[0])["stdout"] as? String == "one\n")
            #expect(try await hub.ended(ids[1])["stdout"] as? String == "two\n")

            let json = folder + "/job.json"
            try #"{"command":"echo","args":"from json"}"#.write(toFile: json, atomically: true, encoding: .utf8)
            let one = try await runXN(["submit", "--json", json], hub: hub.url)
            let submitted = try #require(
                try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as? [[String: Any]])
            #expect(submitted.first?["args"] as? [String] == ["from", "json"])

            let bad = folder + "/bad.yaml"
            try "- command: echo\n- command: echo\n  timout: 3\n".write(toFile: bad, atomically: true, encoding: .utf8)
            let refused = try await runXN(["submit", bad], hub: hub.url)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("job 2") && refused.stderr.contains("timout"))
            let all = try await hub.get("/v1/jobs").object()["jobs"] as? [Any]
            #expect(all?.count == 3)
        }
    }

    @Test func anUnreachableHubGivesOneClearLine() async throws {
        let result = try await runXN(["list"], hub: "http://127.0.0.1:9")
        #expect(result.status == 1)
        #expect(result.stderr == "xn: cannot reach hub at http://127.0.0.1:9 (connection refused)\n")
        let unknown = try await runXN(["show", String(repeating: "a", count: 40)], hub: "http://127.0.0.1:9")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.hasPrefix("xn: cannot reach hub"))
    }
}
