/// A job in http-runner's shape: the body of `POST /`, `GET /<id>` and the callback.
public struct CompatJob: Sendable, Codable, Equatable {
    public var id: String
    public var command: String
    public var arguments: [String]
    public var stdout: String
    public var stderr: String
    /// Null until the process exits.
    public var code: Int32?
    /// Null, or why the job could not run or did not end on its own.
    public var err: String?
    public var callback: String?

    /// Bytes of each stream this shape carries, at most: what a hub kept by default before
    /// output moved to files. It is built whole in memory; the raw output endpoints give the rest.
    public static let inlineOutputBytes = 16 << 20

    public init(_ record: JobRecord, stdout: [UInt8], stderr: [UInt8]) {
        id = record.id.rawValue
        command = record.spec.command
        arguments = record.spec.args
        self.stdout = String(decoding: stdout, as: UTF8.self)
        self.stderr = String(decoding: stderr, as: UTF8.self)
        code = record.exitCode
        err = record.err
        callback = record.spec.callback
    }

    /// JSON with http-runner's key order (id, command, arguments, stdout, stderr, code, err, callback)
    /// and explicit nulls: its clients test `code === null` while a job runs.
    public func json() -> [UInt8] {
        var out = "{\"id\":\(quoted(id)),\"command\":\(quoted(command)),\"arguments\":["
        out += arguments.map(quoted).joined(separator: ",")
        out += "],\"stdout\":\(quoted(stdout)),\"stderr\":\(quoted(stderr)),\"code\":"
        out += code.map { String($0) } ?? "null"
        out += ",\"err\":" + (err.map(quoted) ?? "null")
        out += ",\"callback\":" + (callback.map(quoted) ?? "null") + "}"
        return Array(out.utf8)
    }
}

/// A JSON string literal for `text`.
func quoted(_ text: String) -> String {
    var out = "\""
    out.reserveCapacity(text.utf8.count + 2)
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// The body of every v1 error: a stable machine code, a message for people, the field at fault.
public struct APIErrorBody: Sendable, Codable, Equatable {
    public struct Detail: Sendable, Codable, Equatable {
        public var code: String
        public var message: String
        public var field: String?
    }

    public var error: Detail

    public init(code: String, message: String, field: String? = nil) {
        error = Detail(code: code, message: message, field: field)
    }
}
