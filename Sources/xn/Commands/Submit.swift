import ArgumentParser
import Foundation
import XNClient
import XNProtocol
import Yams

/// `xn submit -- CMD ARGS` or `xn submit job.yaml`: queue jobs and print their ids.
struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Queue a job (or every job in a YAML/JSON file) and print the id(s).")

    @Option(name: [.customShort("f"), .long], help: "A job file: one job or a list of jobs, YAML or JSON.")
    var file: String?

    @Flag(help: "Print the submitted jobs as JSON.")
    var json = false

    @OptionGroup var client: ClientOptions
    @OptionGroup var spec: SpecOptions

    func run() async throws {
        var specs: [JobSpec]
        var words = spec.command
        if words.first == "--" { words.removeFirst() }
        if let file {
            specs = try Self.loadJobFile(file)
        } else if words.count == 1, isJobFile(words[0]), !spec.command.contains("--") {
            specs = try Self.loadJobFile(words[0])
        } else {
            specs = [try spec.makeSpec()]
        }
        let hub = try client.makeClient()
        let jobs = try await reportingErrors {
            var jobs: [JobView] = []
            for spec in specs { jobs.append(try await hub.submit(spec)) }
            return jobs
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            say(String(decoding: try encoder.encode(jobs), as: UTF8.self))
        } else {
            jobs.forEach { say($0.id) }
        }
    }

    private func isJobFile(_ word: String) -> Bool {
        [".yaml", ".yml", ".json"].contains { word.hasSuffix($0) } && FileManager.default.fileExists(atPath: word)
    }

    /// Reads and checks every job in a file before any is submitted, so a bad file queues nothing.
    static func loadJobFile(_ path: String) throws -> [JobSpec] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw ValidationError("cannot read job file \(path)")
        }
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw ValidationError("\(path) is not valid YAML or JSON: \(error)")
        }
        let items: [Any]
        if let list = document as? [Any] {
            items = list
        } else if let one = document {
            items = [one]
        } else {
            throw ValidationError("\(path) holds no job")
        }
        guard !items.isEmpty else { throw ValidationError("\(path) holds no job") }
        return try items.enumerated().map { index, item in
            let label = items.count == 1 ? path : "\(path), job \(index + 1)"
            guard let object = item as? [String: Any] else {
                throw ValidationError("\(label): a job is a mapping with at least 'command'")
            }
            do {
                let json = try JSONSerialization.data(withJSONObject: object)
                return try JobSpec.parse(json: json, strict: true)
            } catch let error as SpecError {
                throw ValidationError("\(label): \(error.message)")
            } catch {
                throw ValidationError("\(label): \(error)")
            }
        }
    }

    /// execnode's `-s "cmd args"`: like execnode's jobs, its stdin stays open, so `xn -a ID` can
    /// type into it later (`xn -s "bash"`, `xn -s "python -i"`).
    static func submitCommand(_ command: String, args: [String], client: ClientOptions) async throws {
        let job = try await reportingErrors {
            try await client.makeClient().submit(JobSpec(command: command, args: args, interactive: true))
        }
        say(job.id)
    }
}
