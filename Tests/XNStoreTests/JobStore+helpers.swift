import XNProtocol
import XNStore

/// Short calls for the tests, so each reads as a script.
extension JobStore {
    /// Inserts a queued job running `command`, created at `time`.
    func submit(
        _ command: String = "true", at time: Int64 = 1_000, state: JobState = .queued
    ) async throws -> JobRecord {
        var record = JobRecord(id: JobID.random(), spec: JobSpec(command: command), createdAt: time)
        record.state = state
        return try await insert(record)
    }

    /// Submits a job and takes it to `state` through the ordinary calls.
    func job(in state: JobState, at time: Int64 = 1_000) async throws -> JobRecord {
        let record = try await submit(at: time)
        if state == .queued { return record }
        let claimed = state == .assigned ? JobState.assigned : .running
        _ = try await claim(record.id, worker: "local", token: .random(), state: claimed, at: time + 1)
        if state.isTerminal {
            let outcome = JobOutcome(state: state, exitCode: state == .succeeded ? 0 : nil, finishedAt: time + 2)
            _ = try await finish(record.id, outcome)
        }
        return try await job(record.id)!
    }

    func all() async throws -> [JobRecord] {
        try await list(JobFilter(), before: nil, limit: 1_000)
    }

    func everything(_ id: JobID, _ stream: OutputStreamKind) async throws -> [UInt8] {
        try await output(id, stream: stream, from: 0, limit: Int.max / 2)
    }
}
