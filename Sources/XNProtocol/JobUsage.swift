/// What a job used, as its runner measured it: from the job's control group where it has one
/// (every process of the job), else the CPU time the kernel counted for its main process and the
/// children that process waited for.
public struct JobUsage: Sendable, Equatable, Codable {
    public var cpuUserSeconds: Double
    public var cpuSystemSeconds: Double
    /// The most memory the job held at once; nil without a cgroup to measure it.
    public var peakMemoryBytes: Int?

    enum CodingKeys: String, CodingKey {
        case cpuUserSeconds = "cpu_user_seconds", cpuSystemSeconds = "cpu_system_seconds"
        case peakMemoryBytes = "peak_memory_bytes"
    }

    public init(cpuUserSeconds: Double, cpuSystemSeconds: Double, peakMemoryBytes: Int?) {
        self.cpuUserSeconds = cpuUserSeconds
        self.cpuSystemSeconds = cpuSystemSeconds
        self.peakMemoryBytes = peakMemoryBytes
    }
}
