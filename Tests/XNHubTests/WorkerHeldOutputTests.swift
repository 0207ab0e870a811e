import Foundation
import GRDB
import Glibc
import Testing

/// A worker holds output in memory while the hub keeps up, and spools it when the hub is away or
/// frozen: the job runs on, and every byte arrives once the hub is back.
@Suite(.timeLimit(.minutes(3)))
struct WorkerHeldOutputTests {
    /// More than a worker holds in memory (8 MiB), so some must go to its spool.
    static let count = 20_000_000

    /// A job that writes a first piece, waits for `gate`, writes `count` bytes and leaves `done`.
    static func gatedJob(folder: String, marker: String) -> String {
        let script =
            "\(Binaries.testtask) bytes 1000 1; while [ ! -e \(folder)/gate ]; do sleep 0.02; done; "
            + "\(Binaries.testtask) bytes \(count) 2; touch \(folder)/done; : \(marker)"
        return #"{"command":"sh","args":["-c","\#(script)"]}"#
    }

    static func startHubAndWorker(
        data: String, heartbeatTimeout: Int = 2, workerOptions: [String] = []
    ) async throws -> (HubProcess, ChildProcess) {
        let options = [
            "--no-local", "--heartbeat-timeout", String(heartbeatTimeout), "--max-output", String(count + 1000),
        ]
        let hub = try await HubProcess.start(data: data, options)
        let worker = try WorkerFailureTests.workerProcess(hub.url, name: "holder", workerOptions)
        try await eventually("worker connected") { () -> Bool? in
            let list = try await hub.get("/v1/workers").object()["workers"] as? [[String: Any]]
            return list?.isEmpty == false ? true : nil
        }
        return (hub, worker)
    }

    static func stdoutBytes(_ hub: HubProcess, _ id: String) async throws -> Int? {
        try await hub.get("/v1/jobs/\(id)").object()["stdout_bytes"] as? Int
    }

    static func expectWholeOutput(_ hub: HubProcess, _ id: String) async throws {
        let job = try await eventually("job ended", timeout: .seconds(60)) { () -> [String: Any]? in
            let job = try await hub.get("/v1/jobs/\(id)").object()
            return ["running", "assigned"].contains(job["state"] as? String ?? "") ? nil : job
        }
        #expect(job["state"] as? String == "succeeded", "\(job)")
        let stored = try await hub.get("/v1/jobs/\(id)/stdout?limit=\(count + 1000)").body
        #expect(stored.count == count + 1000)
        #expect(
            sameBytes(stored, generatedBytes(count: 1000, seed: 1) + generatedBytes(count: count, seed: 2)),
            "stored output differs from what the job wrote")
    }

    @Test func aJobWritingMoreThanTheWorkerHoldsInMemoryRunsOnWhileTheHubIsAway() async throws {
        let data = try temporaryFolder()
        let folder = try temporaryFolder()
        let marker = "xn-held-\(UUID().uuidString)"
        defer { killStragglers(marker) }
        let (first, worker) = try await Self.startHubAndWorker(data: data)
        defer { first.killNow() }
        defer { worker.signal(SIGKILL) }
        let id = try await first.submit(Self.gatedJob(folder: folder, marker: marker))
        try await eventually("first piece stored") { try await Self.stdoutBytes(first, id) == 1000 ? true : nil }
        first.child.signal(SIGKILL)
        _ = try await first.child.exitStatus()
        #expect(FileManager.default.createFile(atPath: folder + "/gate", contents: nil))
        // 20 MB with no hub: the worker must let the job write it all.
        try await eventually("the job wrote everything while the hub was away", timeout: .seconds(30)) {
            FileManager.default.fileExists(atPath: folder + "/done") ? true : nil
        }
        let second = try await HubProcess.start(
            data: data,
            [
                "--no-local", "--heartbeat-timeout", "2", "--max-output", String(Self.count + 1000),
                "-p", String(URL(string: first.url)!.port!),
            ])
        defer { second.killNow() }
        try await Self.expectWholeOutput(second, id)
    }

    @Test func aJobWritingMoreThanTheWorkerHoldsInMemoryRunsOnWhileTheHubIsFrozen() async throws {
        let data = try temporaryFolder()
        let folder = try temporaryFolder()
        let marker = "xn-held-\(UUID().uuidString)"
        defer { killStragglers(marker) }
        // Frozen for a few seconds, the hub must not give up on the worker meanwhile.
        let (hub, worker) = try await Self.startHubAndWorker(data: data, heartbeatTimeout: 10)
        defer { hub.killNow() }
        defer { worker.signal(SIGKILL) }
        let id = try await hub.submit(Self.gatedJob(folder: folder, marker: marker))
        try await eventually("first piece stored") { try await Self.stdoutBytes(hub, id) == 1000 ? true : nil }
        // Stopped, the hub keeps its connection open and acknowledges nothing.
        hub.child.signal(SIGSTOP)
        var resumed = false
        defer { if !resumed { hub.child.signal(SIGCONT) } }
        #expect(FileManager.default.createFile(atPath: folder + "/gate", contents: nil))
        try await eventually("the job wrote everything while the hub was frozen", timeout: .seconds(30)) {
            FileManager.default.fileExists(atPath: folder + "/done") ? true : nil
        }
        hub.child.signal(SIGCONT)
        resumed = true
        try await Self.expectWholeOutput(hub, id)
    }

    /// Output that must leave memory while the hub is away and cannot (the spool folder is gone):
    /// the job is stopped, and once the hub is back it fails saying why, with what the worker held.
    @Test func aWorkerThatCannotSpoolWhileTheHubIsAwayFailsTheJobSayingWhy() async throws {
        let data = try temporaryFolder()
        let folder = try temporaryFolder()
        let spool = try temporaryFolder() + "/spool"
        let marker = "xn-held-\(UUID().uuidString)"
        defer { killStragglers(marker) }
        let (first, worker) = try await Self.startHubAndWorker(data: data, workerOptions: ["--spool", spool])
        defer { first.killNow() }
        defer { worker.signal(SIGKILL) }
        let id = try await first.submit(Self.gatedJob(folder: folder, marker: marker))
        try await eventually("first piece stored") { try await Self.stdoutBytes(first, id) == 1000 ? true : nil }
        first.child.signal(SIGKILL)
        _ = try await first.child.exitStatus()
        try FileManager.default.removeItem(atPath: spool)
        #expect(FileManager.default.createFile(atPath: folder + "/gate", contents: nil))
        let second = try await HubProcess.start(
            data: data,
            [
                "--no-local", "--heartbeat-timeout", "2", "--max-output", String(Self.count + 1000),
                "-p", String(URL(string: first.url)!.port!),
            ])
        defer { second.killNow() }
        let job = try await eventually("job ended", timeout: .seconds(30)) { () -> [String: Any]? in
            let job = try await second.get("/v1/jobs/\(id)").object()
            return ["running", "assigned"].contains(job["state"] as? String ?? "") ? nil : job
        }
        #expect(job["state"] as? String == "failed", "\(job)")
        let err = job["err"] as? String ?? ""
        #expect(err.contains("cannot spool output"), "\(err)")
        #expect(!FileManager.default.fileExists(atPath: folder + "/done"), "the job was stopped")
        // What the worker held in memory arrived, in order.
        let stored = try await second.get("/v1/jobs/\(id)/stdout?limit=\(Self.count)").body
        #expect(stored.count > 1000)
        let expected = generatedBytes(count: 1000, seed: 1) + generatedBytes(count: Self.count, seed: 2)
        #expect(
            sameBytes(stored, Array(expected.prefix(stored.count))), "stored output differs from what the job wrote")
        let next = try await second.submit(#"{"command":"echo","args":["still linked"]}"#)
        let nextJob = try await eventually("next job ended", timeout: .seconds(30)) { () -> [String: Any]? in
            let job = try await second.get("/v1/jobs/\(next)").object()
            return ["queued", "running", "assigned"].contains(job["state"] as? String ?? "") ? nil : job
        }
        #expect(nextJob["state"] as? String == "succeeded", "\(nextJob)")
    }

    /// A hub whose machine crashed may come back without output it had stored and acknowledged
    /// (its last commits lost): the worker no longer holds those bytes, so the job fails and says
    /// which bytes were lost, and the worker's link serves the next job.
    @Test func outputTheHubLostAfterAcknowledgingItFailsTheJobAndTheLinkGoesOn() async throws {
        let data = try temporaryFolder()
        let folder = try temporaryFolder()
        let marker = "xn-held-\(UUID().uuidString)"
        defer { killStragglers(marker) }
        let (first, worker) = try await Self.startHubAndWorker(data: data)
        defer { first.killNow() }
        defer { worker.signal(SIGKILL) }
        let script =
            "\(Binaries.testtask) bytes 300000 1; while [ ! -e \(folder)/gate ]; do sleep 0.02; done; "
            + "\(Binaries.testtask) bytes 1000 2; sleep 60; : \(marker)"
        let id = try await first.submit(#"{"command":"sh","args":["-c","\#(script)"]}"#)
        try await eventually("first piece stored") { try await Self.stdoutBytes(first, id) == 300_000 ? true : nil }
        // The second piece is sent after the first one's ack reached the worker.
        #expect(FileManager.default.createFile(atPath: folder + "/gate", contents: nil))
        try await eventually("second piece stored") { try await Self.stdoutBytes(first, id) == 301_000 ? true : nil }
        first.child.signal(SIGKILL)
        _ = try await first.child.exitStatus()
        // What a crash of the machine can leave: the job's row from before its last commits.
        let queue = try DatabaseQueue(path: data + "/xn.sqlite")
        try await queue.write { db in
            try db.execute(sql: "UPDATE jobs SET stdout_bytes = 100000 WHERE id = ?", arguments: [id])
        }
        try queue.close()
        let second = try await HubProcess.start(
            data: data,
            ["--no-local", "--heartbeat-timeout", "2", "-p", String(URL(string: first.url)!.port!)])
        defer { second.killNow() }
        let job = try await eventually("job ended", timeout: .seconds(30)) { () -> [String: Any]? in
            let job = try await second.get("/v1/jobs/\(id)").object()
            return ["running", "assigned"].contains(job["state"] as? String ?? "") ? nil : job
        }
        #expect(job["state"] as? String == "failed", "\(job)")
        let err = job["err"] as? String ?? ""
        // To 300000 or 301000, as far as the worker had the hub's last ack before the crash.
        #expect(err.contains("stdout bytes 100000 to 30"), "\(err)")
        #expect(err.contains("were lost"), "\(err)")
        let stored = try await second.get("/v1/jobs/\(id)/stdout").body
        #expect(stored == Array(generatedBytes(count: 300_000, seed: 1).prefix(100_000)))
        let next = try await second.submit(#"{"command":"echo","args":["still linked"]}"#)
        let nextJob = try await eventually("next job ended", timeout: .seconds(30)) { () -> [String: Any]? in
            let job = try await second.get("/v1/jobs/\(next)").object()
            return ["queued", "running", "assigned"].contains(job["state"] as? String ?? "") ? nil : job
        }
        #expect(nextJob["state"] as? String == "succeeded", "\(nextJob)")
        #expect(try await second.get("/v1/jobs/\(next)/stdout").body == Array("still linked\n".utf8))
    }
}
