import Foundation
import Glibc
import Testing

/// A hub keeps its jobs across restarts: Ctrl-C and kill -9.
@Suite(.timeLimit(.minutes(2)))
struct RestartTests {
    @Test func afterKill9QueuedJobsRunAndRunningJobsAreLost() async throws {
        let data = try temporaryFolder()
        let marker = "xn-restart-\(UUID().uuidString)"
        defer { killStragglers(marker) }
        let first = try await HubProcess.start(data: data, ["--slots", "1"])
        defer { first.killNow() }
        let finished = try await first.submit(#"{"command":"echo","args":["kept"]}"#)
        _ = try await eventually("first job") { try await first.state(finished) == "succeeded" ? true : nil }
        let running = try await first.submit(#"{"command":"\#(Binaries.testtask)","args":["sleep","60","\#(marker)"]}"#)
        let queued = try await first.submit(#"{"command":"echo","args":["after","restart"]}"#)
        _ = try await eventually("running") { try await first.state(running) == "running" ? true : nil }
        #expect(try await first.state(queued) == "queued")
        await first.kill()

        let second = try await HubProcess.start(data: data, ["--slots", "1"])
        defer { second.killNow() }
        let lost = try await second.get("/v1/jobs/\(running)").object()
        #expect(lost["state"] as? String == "lost")
        #expect((lost["err"] as? String)?.contains("hub stopped while the job was running") == true)
        let ran = try await eventually("queued job to run") { () -> [String: Any]? in
            let job = try await second.get("/v1/jobs/\(queued)").object()
            return job["state"] as? String == "succeeded" ? job : nil
        }
        #expect(ran["stdout"] as? String == "after restart\n")
        let kept = try await second.get("/\(finished)").object()
        #expect(kept["stdout"] as? String == "kept\n")
        await second.kill()
    }

    @Test func ctrlCLetsRunningJobsFinishWithinTheGraceThenRecordsTheRest() async throws {
        let data = try temporaryFolder()
        let hub = try await HubProcess.start(data: data, ["--slots", "2", "--grace", "1.5", "--kill-grace", "0.5"])
        defer { hub.killNow() }
        // The short job ends once told to, so both are surely running when Ctrl-C comes.
        let go = try temporaryFolder() + "/go"
        let short = try await hub.submit(
            #"{"command":"sh","args":["-c","while [ ! -e \#(go) ]; do sleep 0.02; done; echo done"]}"#)
        let long = try await hub.submit(#"{"command":"sleep","args":["60"]}"#)
        _ = try await eventually("both running") {
            let states = (try await hub.state(short), try await hub.state(long))
            return states == ("running", "running") ? true : nil
        }
        #expect(FileManager.default.createFile(atPath: go, contents: nil))
        hub.child.signal(SIGINT)
        let status = try await hub.child.exitStatus(timeout: .seconds(15))
        #expect(status == 0)

        let again = try await HubProcess.start(data: data)
        defer { again.killNow() }
        let shortJob = try await again.get("/v1/jobs/\(short)").object()
        #expect(shortJob["state"] as? String == "succeeded")
        #expect(shortJob["stdout"] as? String == "done\n")
        let longJob = try await again.get("/v1/jobs/\(long)").object()
        #expect(longJob["state"] as? String == "lost")
        #expect((longJob["err"] as? String)?.contains("hub shut down") == true)
        await again.kill()
    }

    @Test func aSecondHubOnTheSameDataFolderIsRefused() async throws {
        let data = try temporaryFolder()
        let first = try await HubProcess.start(data: data)
        defer { first.killNow() }
        let second = try ChildProcess(Binaries.xn, ["hub", "-p", "0", "--data", data])
        let status = try await second.exitStatus(timeout: .seconds(20))
        #expect(status == 1)
        #expect(second.stderrText.contains("in use by another hub"))
        await first.kill()
    }
}
