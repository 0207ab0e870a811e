public import XNProtocol

extension JobStore {
    public func appendOutput(_ id: JobID, stream: OutputStreamKind, offset: Int, bytes: [UInt8]) async throws {
        try await appendOutput(id, stream: stream, offset: offset, bytes: bytes[...])
    }

    /// Both streams of a finished or running job as stored (the first `limit` bytes of each);
    /// skips the query for an empty stream.
    public func fullOutput(of job: JobRecord, limit: Int = .max) async throws -> (stdout: [UInt8], stderr: [UInt8]) {
        let stdout = job.stdoutBytes > 0 ? try await output(job.id, stream: .stdout, from: 0, limit: limit) : []
        let stderr = job.stderrBytes > 0 ? try await output(job.id, stream: .stderr, from: 0, limit: limit) : []
        return (stdout, stderr)
    }
}
