public import XNExec
public import XNProtocol

extension ProcessRequest {
    /// What runs for a job, the same on the hub's slots and on a worker.
    public init(_ spec: JobSpec, outputLimit: Int) {
        self.init(
            command: spec.executable, arguments: spec.args, environment: spec.env, workingDirectory: spec.cwd,
            standardInput: spec.stdin.map { Array($0.utf8) }, outputLimit: outputLimit,
            terminal: spec.tty.map {
                TerminalSize(rows: UInt16(clamping: $0.rows), columns: UInt16(clamping: $0.cols))
            },
            keepsInputOpen: spec.keepsInputOpen)
        limitsNeedingCgroup = (spec.limits?.byName ?? []).filter {
            $0.value != nil && JobLimits.cgroupNames.contains($0.name)
        }.map { "limits." + $0.name }
    }
}

extension ResourceLimits {
    /// These limits, each lowered to the job's own where it asks for less.
    public func tightened(by job: JobLimits?) -> ResourceLimits {
        guard let job else { return self }
        func lower(_ mine: Int?, _ theirs: Int?) -> Int? {
            guard let theirs else { return mine }
            return min(mine ?? theirs, theirs)
        }
        return ResourceLimits(
            cpuSeconds: lower(cpuSeconds, job.cpu), addressSpaceBytes: lower(addressSpaceBytes, job.memory),
            openFiles: lower(openFiles, job.files), processes: lower(processes, job.procs),
            cpuPercent: lower(cpuPercent, job.cpuPercent))
    }

    /// The same limits by the spec's names (cpu, memory, files, procs, cpu_percent).
    public var asJobLimits: JobLimits {
        JobLimits(
            cpu: cpuSeconds, memory: addressSpaceBytes, files: openFiles, procs: processes, cpuPercent: cpuPercent)
    }
}
