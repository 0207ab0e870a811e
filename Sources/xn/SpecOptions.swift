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
