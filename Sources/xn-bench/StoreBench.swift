import Foundation
import XNProtocol
import XNStore

/// The store alone: what a job on the hub's slots costs it (stored running, then its end),
/// without HTTP, scheduler or process around it.
enum StoreBench {
    /// `iterations` jobs one after another in a new store in a temporary folder; each duration
    /// covers the insert and the end, both committed.
    static func startAndEnd(iterations: Int) async throws -> Sample {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "xn-bench-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try SQLiteJobStore(path: folder.appendingPathComponent("xn.db").path)
        let spec = JobSpec(command: "/bin/true", env: ["HOME": "/root", "LANG": "C.UTF-8"], labels: ["os": "linux"])
        var durations: [Double] = []
        durations.reserveCapacity(iterations)
        let start = now()
        for _ in 0..<iterations {
            let began = now()
            var job = JobRecord(id: .random(), spec: spec, createdAt: Timestamp.now())
            job.state = .running
            job.startedAt = job.createdAt
            job.worker = "local"
            job.attempts = 1
            let token = AttemptToken.random()
            job.attemptToken = token
            _ = try await store.insert(job)
            let ended = try await store.finish(
                job.id, JobOutcome(state: .succeeded, exitCode: 0, finishedAt: Timestamp.now()), token: token)
            guard ended?.state == .succeeded else { throw BenchError("job \(job.id) did not end in the store") }
            durations.append(now() - began)
        }
        return Sample(durations: durations, wall: now() - start)
    }
}
