import Foundation
import Synchronization
import Testing
import XNClient

/// Jobs under a terminal, and signals to running jobs, on the hub's slots and on a worker.
@Suite(.timeLimit(.minutes(2)))
struct InteractiveJobsTests {
    static let isattyScript =
        #"{"command":"python3","args":["-c","import os; print(os.isatty(0), os.isatty(1))"],"tty":"#

    @Test func aTTYJobRunsUnderATerminalAndSaysSo() async throws {
        try await withHub { hub in
            let id = try await hub.submit(Self.isattyScript + #"{"rows":30,"cols":120}}"#)
            let job = try await hub.ended(id)
            #expect(job["state"] as? String == "succeeded")
            // A terminal turns "\n" into "\r\n": the output is what a terminal showed.
            #expect(job["stdout"] as? String == "True True\r\n")
            #expect((job["tty"] as? [String: Int]) == ["rows": 30, "cols": 120])
            #expect(job["interactive"] as? Bool == true)
            let plain = try await hub.ended(try await hub.submit(#"{"command":"true"}"#))
            #expect(plain["tty"] == nil && plain["interactive"] == nil)
        }
    }

    @Test func badTTYAndInteractiveFieldsAreRefusedByName() async throws {
        try await withHub { hub in
            for body in [
                #"{"command":"sh","tty":{"rows":0,"cols":80}}"#, #"{"command":"sh","tty":{"rows":24}}"#,
                #"{"command":"sh","tty":"yes"}"#,
            ] {
                let result = try await hub.post("/v1/jobs", body)
                #expect(result.status == 400, "\(body)")
                #expect((try result.object()["error"] as? [String: Any])?["field"] as? String == "tty")
            }
            let result = try await hub.post("/v1/jobs", #"{"command":"sh","interactive":"yes"}"#)
            #expect(result.status == 400)
            #expect((try result.object()["error"] as? [String: Any])?["field"] as? String == "interactive")
        }
    }

    /// A shell that reports USR1 and exits 7 when it gets it.
    static let trapper =
        #"{"command":"sh","args":["-c","trap 'echo got-usr1; exit 7' USR1; echo ready; while :; do sleep 0.05; done"]"#

    @Test func aSignalReachesTheJobOnTheHubAndOnAWorker() async throws {
        try await withHub({ $0.maxOutputBytes = 1 << 20 }) { hub in
            let worker = try TestWorker.start(hub: hub.url, name: "sig", labels: ["where": "worker"])
            try await hub.waitForWorkers(["sig"])
            for spec in [Self.trapper + "}", Self.trapper + #","labels":{"where":"worker"}}"#] {
                let id = try await hub.submit(spec)
                try await eventually("job is ready") { () -> Bool? in
                    let job = try await hub.get("/v1/jobs/\(id)").object()
                    return (job["stdout"] as? String)?.contains("ready") == true ? true : nil
                }
                let sent = try await hub.post("/v1/jobs/\(id)/signal", #"{"signal":"usr1"}"#)
                #expect(sent.status == 202)
                let job = try await hub.ended(id)
                #expect(job["exit_code"] as? Int == 7, "\(spec)")
                #expect((job["stdout"] as? String)?.contains("got-usr1") == true)
                let late = try await hub.post("/v1/jobs/\(id)/signal", #"{"signal":"TERM"}"#)
                #expect(late.status == 409)
            }
            await worker.stop()
        }
    }

    /// `xn run -it` writes output to the terminal as the attach client hands it over; a terminal
    /// that takes it slowly (a flood over a slow ssh link) must not hold back the Ctrl-C typed
    /// to stop the flood.
    @Test func aKeyTypedWhileTheTerminalIsSlowToTakeOutputReachesTheJob() async throws {
        try await withHub { hub in
            let id = try await hub.submit(
                #"{"command":"sh","args":["-c","echo ready; head -c 1 >/dev/null; echo got-the-key"],"interactive":true}"#
            )
            let client = AttachClient(hub: hub.url, job: id)
            let terminal = DispatchSemaphore(value: 0)
            let stuck = Atomic<Bool>(false)
            let session = Task {
                try await client.run { event in
                    guard case .output = event, !stuck.exchange(true, ordering: .relaxed) else { return }
                    // The terminal takes nothing until the test lets it (or 30 s pass).
                    _ = terminal.wait(timeout: .now() + 30)
                }
            }
            // Whatever fails below, the client is let go and stopped.
            defer {
                terminal.signal()
                session.cancel()
            }
            try await eventually("the client to be handed the job's first output") {
                stuck.load(ordering: .relaxed) ? true : nil
            }
            client.send(.input(Array("k".utf8)))
            let job = try await hub.ended(id, timeout: .seconds(15))
            terminal.signal()
            #expect(job["state"] as? String == "succeeded")
            #expect((job["stdout"] as? String)?.hasSuffix("got-the-key\n") == true)
            guard case .exited = try await session.value else {
                Issue.record("the attach did not end with the job")
                return
            }
        }
    }
}
