import ArgumentParser
import Foundation
import XNProtocol

/// Job fields a command line can set, shared by `run` and `submit`.
struct SpecOptions: ParsableArguments {
    @Option(help: "Kill the job (its whole process group) after this many seconds.")
    var timeout: Double?

    @Option(help: "Working directory of the job on the machine that runs it.")
    var cwd: String?

    @Option(name: .customLong("env"), help: "Set a variable for the job: KEY=VALUE (repeatable).")
    var env: [String] = []

    @Option(help: "A name to find the job by.")
    var name: String?

    @Option(help: "URL that receives the finished job by POST.")
    var callback: String?

    @Option(name: .customLong("on"), help: "Run only on workers with this label: k=v (repeatable).")
    var labels: [String] = []

    @Option(help: "Times the job is queued again if its worker is lost.")
    var retries: Int?

    @Option(help: "File whose contents become the job's stdin ('-' reads this command's stdin).")
    var stdinFile: String?

    @Flag(
        name: [.customShort("i"), .long],
        help: "Keep the job's stdin open: `xn run -i` sends this command's stdin to it.")
    var interactive = false

    @Flag(name: [.customShort("t"), .long], help: "Run the job under a terminal (the size of this one, else 24x80).")
    var tty = false

    @Option(help: "CPU seconds the job may use (within the runner's own limit).")
    var limitCpu: Int?

    @Option(
        help: """
            Memory the job may use: bytes, or with K, M, G (within the runner's own limit). All of the job together, \
            on runners that give jobs a cgroup; others refuse the job.
            """)
    var limitMemory: ByteCount?

    @Option(help: "Files the job may have open.")
    var limitFiles: Int?

    @Option(help: "Processes the job may have at once (needs a runner that gives jobs a cgroup).")
    var limitProcs: Int?

    @Option(help: "CPU the job may use, in percent of one CPU (needs a runner that gives jobs a cgroup).")
    var limitCpuPercent: Int?

    @Flag(help: "Run the job isolated: the system read-only, its own /tmp and PID namespace, no network.")
    var isolate = false

    @Flag(help: "With --isolate: keep the network (where the token allows).")
    var network = false

    @Option(help: "Bytes kept per output stream: bytes, or with K, M, G (within the hub's --max-output).")
    var maxOutput: ByteCount?

    @Argument(parsing: .remaining, help: "The command and its arguments (after --).")
    var command: [String] = []

    /// The spec for the command given, checked with the hub's own rules.
    func makeSpec() throws -> JobSpec {
        var words = command
        if words.first == "--" { words.removeFirst() }
        guard let program = words.first else { throw ValidationError("give the command to run after --") }
        var object: [String: Any] = ["command": program, "args": Array(words.dropFirst())]
        let variables = try keyValuePairs(env, option: "--env")
        if !variables.isEmpty { object["env"] = variables }
        if let timeout { object["timeout"] = timeout }
        if let cwd { object["cwd"] = cwd }
        if let name { object["name"] = name }
        if let callback { object["callback"] = callback }
        let wanted = try keyValuePairs(labels, option: "--on")
        if !wanted.isEmpty { object["labels"] = wanted }
        if let retries { object["retries"] = retries }
        if let stdinFile { object["stdin"] = try readInput(stdinFile) }
        if interactive { object["interactive"] = true }
        var limits: [String: Int] = [:]
        for (name, value) in [
            ("cpu", limitCpu), ("memory", limitMemory?.bytes), ("files", limitFiles), ("procs", limitProcs),
            ("cpu_percent", limitCpuPercent),
        ] {
            if let value { limits[name] = value }
        }
        if !limits.isEmpty { object["limits"] = limits }
        if let maxOutput { object["max_output"] = maxOutput.bytes }
        if isolate { object["isolate"] = true }
        if network { object["network"] = true }
        if tty {
            let size = localTerminalSize() ?? .standard
            object["tty"] = ["rows": size.rows, "cols": size.cols]
        }
        do {
            return try JobSpec.parse(object: object, strict: true)
        } catch {
            throw ValidationError(error.message)
        }
    }

    private func readInput(_ path: String) throws -> String {
        let data: Data?
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            data = FileManager.default.contents(atPath: path)
        }
        guard let data else { throw ValidationError("--stdin-file \(path): cannot read it") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("--stdin-file \(path): stdin must be UTF-8 text")
        }
        return text
    }
}

/// A byte count on the command line: `1048576`, `512K`, `256M`, `2G` (powers of 1024).
struct ByteCount: ExpressibleByArgument, Sendable {
    let bytes: Int

    init(bytes: Int) {
        self.bytes = bytes
    }

    var defaultValueDescription: String { String(bytes) }

    init?(argument: String) {
        let text = argument.uppercased().replacingOccurrences(of: "IB", with: "").replacingOccurrences(
            of: "B", with: "")
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = Substring(text)
        var unit = 1
        if let last = text.last, let scale = units[last] {
            unit = scale
            digits = text.dropLast()
        }
        guard let value = Int(digits), value >= 0 else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: unit)
        guard !overflow else { return nil }
        self.bytes = bytes
    }
}
