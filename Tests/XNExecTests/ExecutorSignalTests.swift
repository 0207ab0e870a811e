import Foundation
import Testing
import XNExec
import XNProtocol

/// Conformance: ending processes early, and the process group.
@Suite("JobExecutor: signals and process groups", .timeLimit(.minutes(1)))
struct ExecutorSignalTests {
    @Test("SIGTERM ends a sleeping process, reported as the signal", arguments: executors)
    func sigterm(executor: any JobExecutor) async throws {
        let marker = makeMarker()
        let process = try executor.start(TestTask.request("sleep", "30", marker))
        defer { process.signal(SIGKILL) }
        #expect(await eventually { isAlive(process.pid, marker: marker) })
        process.signal(SIGTERM)
        let result = await process.result(timeout: .seconds(10))
        #expect(result?.termination == .signaled(SIGTERM))
    }

    @Test("terminate(grace:) kills a process that ignores SIGTERM once the grace is over", arguments: executors)
    func terminateIgnoringTerm(executor: any JobExecutor) async throws {
        let process = try executor.start(TestTask.request("ignore-term", "30"))
        defer { process.signal(SIGKILL) }
        let output = OutputCollector(process)
        #expect(await eventually { output.text(.stdout) == "ready\n" })

        let grace = Duration.milliseconds(500)
        let started = ContinuousClock.now
        let result = await process.terminate(grace: grace)
        let took = ContinuousClock.now - started
        #expect(result.termination == .signaled(SIGKILL))
        #expect(took >= grace, "SIGTERM was ignored, so only SIGKILL after the grace can end it")
        #expect(took < .seconds(10))
    }

    @Test("ending the process group leaves neither child nor grandchild alive", arguments: executors)
    func processGroup(executor: any JobExecutor) async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pidFile = directory + "/pids"
        let marker = makeMarker()
        let process = try executor.start(TestTask.request("spawn-child", pidFile, marker))
        defer { process.signal(SIGKILL) }

        #expect(await eventually { FileManager.default.fileExists(atPath: pidFile) })
        let pids = try String(contentsOfFile: pidFile, encoding: .utf8).split(separator: " ")
            .compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        try #require(pids.count == 2)
        let (child, grandchild) = (pids[0], pids[1])
        #expect(child == process.pid)
        #expect(await eventually { isAlive(child, marker: marker) && isAlive(grandchild, marker: marker) })

        let result = await process.terminate(grace: .seconds(5))
        #expect(result.termination == .signaled(SIGTERM))
        #expect(await eventually { !isAlive(child, marker: marker) && !isAlive(grandchild, marker: marker) })
        // Should the test fail, do not leave the grandchild behind.
        if isAlive(grandchild, marker: marker) { kill(grandchild, SIGKILL) }
    }

    @Test("a descendant that left the group and session dies with the job", arguments: executors)
    func escapedSession(executor: any JobExecutor) async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pidFile = directory + "/escaped"
        let marker = makeMarker()
        var request = ProcessRequest(
            command: "/bin/sh",
            arguments: ["-c", "setsid sh -c 'echo $$ > \(pidFile); sleep 300; : \(marker)' & sleep 300"])
        request.tag = "job-\(marker)"
        let process = try executor.start(request)
        defer { process.signal(SIGKILL) }
        #expect(await eventually { (try? String(contentsOfFile: pidFile, encoding: .utf8))?.hasSuffix("\n") == true })
        let escaped = try #require(
            Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(await eventually { isAlive(escaped, marker: marker) })
        #expect(
            getsid(escaped) != process.pid && getpgid(escaped) != process.pid, "it left the job's session and group")
        #expect(ProcessTable.members(marked: "XN_JOB_ID=job-\(marker)").contains(escaped))

        _ = await process.terminate(grace: .seconds(5))
        #expect(await eventually { !isAlive(escaped, marker: marker) })
        if isAlive(escaped, marker: marker) { kill(escaped, SIGKILL) }
    }

    @Test("what a process leaves running in its group ends with it", arguments: executors)
    func leftoversEnd(executor: any JobExecutor) async throws {
        let marker = makeMarker()
        let process = try executor.start(
            ProcessRequest(
                command: "/bin/sh", arguments: ["-c", "sh -c 'sleep 300; : \(marker)' >/dev/null 2>&1 & echo $!"]))
        let output = OutputCollector(process)
        let result = await process.result()
        #expect(result.termination == .exited(0))
        // The collector reads the pipe on its own task: wait for the whole line, not just for the end.
        #expect(await eventually { output.text(.stdout).hasSuffix("\n") })
        let left = try #require(Int32(output.text(.stdout).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(await eventually { !isAlive(left, marker: marker) })
        if isAlive(left, marker: marker) { kill(left, SIGKILL) }
    }

    @Test("a grandchild holding stdout open does not keep the job running", arguments: executors)
    func grandchildHoldsPipe(executor: any JobExecutor) async throws {
        let started = ContinuousClock.now
        let process = try executor.start(ProcessRequest(command: "/bin/sh", arguments: ["-c", "sleep 5 & echo done"]))
        // The background sleep outlives the shell in its process group.
        defer { process.signal(SIGKILL) }
        let output = OutputCollector(process)
        let result = await process.result(timeout: .seconds(20))
        #expect(result?.termination == .exited(0))
        #expect(ContinuousClock.now - started < .seconds(3))
        #expect(await eventually { output.text(.stdout) == "done\n" })
    }

    @Test("result(timeout:) gives nil while the process runs, and the process keeps running", arguments: executors)
    func resultTimeout(executor: any JobExecutor) async throws {
        let marker = makeMarker()
        let process = try executor.start(TestTask.request("sleep", "30", marker))
        defer { process.signal(SIGKILL) }
        #expect(await eventually { isAlive(process.pid, marker: marker) })
        #expect(await process.result(timeout: .milliseconds(200)) == nil)
        #expect(isAlive(process.pid, marker: marker))
        #expect(await process.result(timeout: .milliseconds(50)) == nil)
        #expect(isAlive(process.pid, marker: marker))

        process.signal(SIGKILL)
        #expect(await process.result(timeout: .seconds(10))?.termination == .signaled(SIGKILL))
    }

    @Test("every waiter gets the same result", arguments: executors)
    func concurrentWaiters(executor: any JobExecutor) async throws {
        let process = try executor.start(TestTask.request("sleep", "0.3"))
        async let first = process.result()
        async let second = process.result()
        async let third = process.result(timeout: .seconds(20))
        let results = await [first, second, third]
        // The same result, usage and all, for every waiter.
        #expect(results[0]?.termination == .exited(0))
        #expect(results[1] == results[0] && results[2] == results[0])
        #expect(await process.result() == results[0])
    }
}
