import Foundation
import GRDB
import Glibc
import Testing

/// A worker holds output in memory while the hub keeps up, and spools it when the hub is away or
/// frozen: the job runs on, and every byte arrives once the hub is back.
@Suite(.timeLimit(.minutes(3)))
struct WorkerHeldOutputTests {
    /// More than a worker holds in memory (4 MiB), so some must go to its spool.
    static let count = 20_000_000

    /// A job that writes a first piece, waits for `gate`, writes `count` bytes and leaves `done`.
    static func gatedJob(folder: String, marker: String) -> String {
        let script =
            "\(Binaries.testtask) bytes 1000 1; while [ ! -e \(folder)/gate ]; do sleep 0.02; done; "
            + "\(Binaries.testtask) bytes \(count) 2; touch \(folder)/done; : \(marker)"
        return #"{"command":"sh","args":["-c","\#(script)"]}"#
    }

    static func hubOptions(heartbeatTimeout: Int = 2) -> [String] {
        ["--no-local", "--heartbeat-timeout", String(heartbeatTimeout), "--max-output", String(count + 1000)]
    }

    static func startHubAndWorker(
        data: String, heartbeatTimeout: Int = 2, workerOptions: [String] = []
    ) async throws -> (HubProcess, ChildProcess) {
        let hub = try await HubProcess.start(data: data, hubOptions(heartbeatTimeout: heartbeatTimeout))
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

    /// A hub on the data folder and port of `first`, which was killed.
    static func restartHub(data: String, after first: HubProcess) async throws -> HubProcess {
        try await HubProcess.start(data: data, hubOptions() + ["-p", String(URL(string: first.url)!.port!)])
    }

    /// The job once it has ended.
    static func endedJob(
        _ hub: HubProcess, _ id: String, timeout: Duration = .seconds(30)
    ) async throws
        -> [String: Any]
    {
        try await eventually("job \(id) ended", timeout: timeout) { () -> [String: Any]? in
            let job = try await hub.get("/v1/jobs/\(id)").object()
            return ["queued", "running", "assigned"].contains(job["state"] as? String ?? "") ? nil : job
        }
    }

    /// The worker's link still serves jobs.
    static func expectNextJobRuns(_ hub: HubProcess) async throws {
        let next = try await hub.submit(#"{"command":"echo","args":["still linked"]}"#)
        let job = try await endedJob(hub, next)
        #expect(job["state"] as? String == "succeeded", "\(job)")
        #expect(try await hub.get("/v1/jobs/\(next)/stdout").body == Array("still linked\n".utf8))
    }

    static func expectWholeOutput(_ hub: HubProcess, _ id: String) async throws {
        let job = try await endedJob(hub, id, timeout: .seconds(60))
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
        let second = try await Self.restartHub(data: data, after: first)
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
        // The hub stays away until the worker has had to stop the job: back sooner, it would take
        // the output before the worker's memory is full, and the job would succeed.
        try await eventually("the worker to stop the job", timeout: .seconds(30)) {
            try processRuns(marker) ? nil : true
        }
        let second = try await Self.restartHub(data: data, after: first)
        defer { second.killNow() }
        let job = try await Self.endedJob(second, id)
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
        try await Self.expectNextJobRuns(second)
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
        let second = try await Self.restartHub(data: data, after: first)
        defer { second.killNow() }
        let job = try await Self.endedJob(second, id)
        #expect(job["state"] as? String == "failed", "\(job)")
        let err = job["err"] as? String ?? ""
        // To 300000 or 301000, as far as the worker had the hub's last ack before the crash.
        #expect(err.contains("stdout bytes 100000 to 30"), "\(err)")
        #expect(err.contains("were lost"), "\(err)")
        let stored = try await second.get("/v1/jobs/\(id)/stdout").body
        #expect(stored == Array(generatedBytes(count: 300_000, seed: 1).prefix(100_000)))
        try await Self.expectNextJobRuns(second)
    }
}
