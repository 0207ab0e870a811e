import ArgumentParser
import Foundation
import Logging
import XNClient

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "Hub URL (default: $XN_HUB, else http://127.0.0.1:9000).")
    var hub: String?

    var hubURL: String {
        hub ?? ProcessInfo.processInfo.environment["XN_HUB"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "http://127.0.0.1:9000"
    }

    func makeClient() -> HubClient {
        HubClient(baseURL: hubURL)
    }
}

/// Runs a client action, turning a `ClientError` into one line on stderr and exit status 1.
func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ClientError {
        printError(error.message)
        throw ExitCode(1)
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("xn: \(message)\n".utf8))
}

/// One line on stdout, unbuffered so it stays in order with raw output bytes.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Parses `KEY=VALUE` words (`--env`, `--on`, `--labels`); `option` names the flag in errors.
func keyValuePairs(_ words: [String], option: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for word in words {
        guard let equals = word.firstIndex(of: "="), equals != word.startIndex else {
            throw ValidationError("\(option) \(word): expected KEY=VALUE")
        }
        result[String(word[..<equals])] = String(word[word.index(after: equals)...])
    }
    return result
}

/// Logs to stderr at `level` (a valid level name; commands check it in `validate()`).
func makeLogger(label: String, level: String) -> Logger {
    LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    var logger = Logger(label: label)
    logger.logLevel = Logger.Level(rawValue: level) ?? .info
    return logger
}
