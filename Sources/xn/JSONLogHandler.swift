import ArgumentParser
import Foundation
import Logging

/// How the hub and the worker write their log on stderr.
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    /// Lines for people.
    case text
    /// One JSON object a line, for log collectors.
    case json
}

/// `--log-format json`: one JSON object a line on stderr with `time` (RFC 3339, milliseconds, UTC),
/// `level`, `message`, `logger`, and each metadata key as a field of its own (`job`, `worker`,
/// `token`, the audit lines' `from` and `command`). A metadata key that would shadow one of those
/// four is written as `meta.KEY`.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        var fields: [String: String] = [
            "time": Self.timestamp(Date()), "level": event.level.rawValue, "message": event.message.description,
            "logger": label,
        ]
        for (key, value) in merged {
            fields[fields[key] == nil ? key : "meta.\(key)"] = value.description
        }
        writeAll(2, Array(Self.line(fields).utf8))
    }

    /// The object as one line, keys sorted so lines read alike.
    static func line(_ fields: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(fields)) ?? Data(#"{"message":"unencodable log line"}"#.utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}
