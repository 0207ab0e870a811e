import ArgumentParser
import Foundation
import Logging
import XNClient

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "Hub URL (default: $XN_HUB, else http://127.0.0.1:9000).")
    var hub: String?

    @OptionGroup var credentials: TokenOptions

    var hubURL: String {
        hub ?? ProcessInfo.processInfo.environment["XN_HUB"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "http://127.0.0.1:9000"
    }

    func makeClient() throws -> HubClient {
        do {
            return try HubClient(baseURL: hubURL, token: try credentials.resolved(), caFile: credentials.caFile)
        } catch let error as ClientError {
            printError(error.message)
            throw ExitCode(1)
        }
    }
}

/// How to reach a hub that checks who calls: a bearer token from `--token`, `--token-file`,
/// `$XN_TOKEN_FILE`, `$XN_TOKEN` (in that order), and the CA to trust for `https://` hubs.
struct TokenOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Bearer token for a hub that has tokens (default: $XN_TOKEN). Other users can read a command "
                + "line in /proc: prefer --token-file or $XN_TOKEN."))
    var token: String?

    @Option(help: ArgumentHelp("File holding the bearer token (default: $XN_TOKEN_FILE).", valueName: "file"))
    var tokenFile: String?

    @Option(
        name: .customLong("ca"),
        help: ArgumentHelp(
            "PEM file of the CA that signed an https hub's certificate (default: $XN_CA).", valueName: "file"))
    var ca: String?

    var caFile: String? { ca ?? ProcessInfo.processInfo.environment["XN_CA"].flatMap { $0.isEmpty ? nil : $0 } }

    /// The file the token comes from, if any: isolated jobs must not see it.
    var tokenFilePath: String? {
        tokenFile ?? ProcessInfo.processInfo.environment["XN_TOKEN_FILE"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The token, or nil when none is given; a file that cannot be read is an error.
    func resolved() throws -> String? {
        let environment = ProcessInfo.processInfo.environment
        if let token, !token.isEmpty { return token }
        if let path = tokenFile ?? environment["XN_TOKEN_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("token file \(path): cannot read it")
            }
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else { throw ValidationError("token file \(path) is empty") }
            return text
        }
        return environment["XN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
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
    writeAll(2, Array("xn: \(message)\n".utf8))
}

/// One line on stdout, unbuffered so it stays in order with raw output bytes. A reader that
/// went away (`xn list | head`) is not an error.
func say(_ line: String) {
    writeAll(1, Array((line + "\n").utf8))
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

/// Logs to stderr at `level` (a valid level name; commands check it in `validate()`), as lines for
/// people or as JSON objects.
func makeLogger(label: String, level: String, format: LogFormat = .text) -> Logger {
    switch format {
    case .text: LoggingSystem.bootstrap { TextLogHandler(label: $0) }
    case .json: LoggingSystem.bootstrap { JSONLogHandler(label: $0) }
    }
    var logger = Logger(label: label)
    logger.logLevel = Logger.Level(rawValue: level) ?? .info
    return logger
}
