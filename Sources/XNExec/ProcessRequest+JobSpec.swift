public import XNProtocol

extension ProcessRequest {
    /// What runs for a job, the same on the hub's slots and on a worker.
    public init(_ spec: JobSpec, outputLimit: Int) {
        self.init(
            command: spec.command, arguments: spec.args, environment: spec.env, workingDirectory: spec.cwd,
            standardInput: spec.stdin.map { Array($0.utf8) }, outputLimit: outputLimit,
            terminal: spec.tty.map {
                TerminalSize(rows: UInt16(clamping: $0.rows), columns: UInt16(clamping: $0.cols))
            },
            keepsInputOpen: spec.keepsInputOpen)
    }
}
