import Foundation

extension JobSpec {
    /// The fields a v1 body may carry; any other is refused so a typo ("timout") is not ignored.
    public static let fields: Set<String> = [
        "command", "args", "env", "cwd", "timeout", "stdin", "name", "callback", "labels", "retries", "tty", "limits",
        "max_output",
        "interactive", "isolate", "network",
    ]

    /// Parses a JSON request body.
    ///
    /// http-runner's `args` string is split on whitespace; `strict` refuses unknown fields (v1),
    /// the compat route ignores them as http-runner did.
    public static func parse(json: some Sequence<UInt8>, strict: Bool) throws(SpecError) -> JobSpec {
        let data = Data(json)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw SpecError(field: nil, "body is not valid JSON")
        }
        guard let body = object as? [String: Any] else {
            throw SpecError(field: nil, "body must be a JSON object")
        }
        return try parse(object: body, strict: strict)
    }

    /// Parses one job from a decoded JSON (or YAML) object.
    public static func parse(object body: [String: Any], strict: Bool) throws(SpecError) -> JobSpec {
        if strict, let unknown = body.keys.sorted().first(where: { !fields.contains($0) }) {
            throw SpecError(field: unknown, "unknown field '\(unknown)'")
        }
        guard let rawCommand = body["command"], !(rawCommand is NSNull) else {
            throw SpecError(field: "command", "command is required")
        }
        guard let command = string(rawCommand) else {
            throw SpecError(field: "command", "command must be a string")
        }
        guard !command.isEmpty else { throw SpecError(field: "command", "command must not be empty") }
        guard !command.contains("\0") else { throw SpecError(field: "command", "command must not contain NUL") }
        var spec = JobSpec(command: command)
        spec.args = try parseArgs(body["args"])
        spec.env = try parseEnv(body["env"])
        spec.cwd = try optionalString(body, "cwd")
        if let cwd = spec.cwd, cwd.isEmpty || cwd.contains("\0") {
            throw SpecError(field: "cwd", "cwd must be a non-empty path")
        }
        spec.stdin = try optionalString(body, "stdin")
        spec.name = try optionalString(body, "name")
        if let name = spec.name, name.count > 200 {
            throw SpecError(field: "name", "name must be at most 200 characters")
        }
        spec.callback = try optionalString(body, "callback")
        if let callback = spec.callback {
            try validateCallback(callback)
        }
        spec.labels = try parseLabels(body["labels"])
        if let raw = body["retries"], !(raw is NSNull) {
            guard let number = raw as? NSNumber, !isBool(number), number.doubleValue == number.doubleValue.rounded(),
                (0...100).contains(number.intValue)
            else {
                throw SpecError(field: "retries", "retries must be a whole number from 0 to 100")
            }
            spec.retries = number.intValue
        }
        spec.tty = try parseTerminal(body["tty"])
        spec.interactive = try flag(body, "interactive")
        spec.isolate = try flag(body, "isolate")
        spec.network = try flag(body, "network")
        if let raw = body["timeout"], !(raw is NSNull) {
            guard let number = raw as? NSNumber, !isBool(number), number.doubleValue.isFinite,
                number.doubleValue > 0, number.doubleValue <= 31_536_000
            else {
                throw SpecError(field: "timeout", "timeout must be a number of seconds between 0 and 31536000")
            }
            spec.timeout = number.doubleValue
        }
        spec.limits = try parseLimits(body["limits"])
        if let raw = body["max_output"], !(raw is NSNull) {
            guard let number = raw as? NSNumber, !isBool(number), number.doubleValue == number.doubleValue.rounded(),
                number.doubleValue >= 0, number.doubleValue <= 9_007_199_254_740_992
            else {
                throw SpecError(field: "max_output", "max_output must be a whole number of bytes, 0 or more")
            }
            spec.maxOutput = number.intValue
        }
        return spec
    }

    /// A field that is true or false; absent or null is false.
    private static func flag(_ body: [String: Any], _ name: String) throws(SpecError) -> Bool {
        guard let raw = body[name], !(raw is NSNull) else { return false }
        guard let flag = raw as? NSNumber, isBool(flag) else {
            throw SpecError(field: name, "\(name) must be true or false")
        }
        return flag.boolValue
    }

    private static func parseLimits(_ raw: Any?) throws(SpecError) -> JobLimits? {
        guard let raw, !(raw is NSNull) else { return nil }
        let names = JobLimits.names.joined(separator: ", ")
        guard let object = raw as? [String: Any] else {
            throw SpecError(field: "limits", "limits must be an object with any of: \(names)")
        }
        if let unknown = object.keys.sorted().first(where: { !JobLimits.names.contains($0) }) {
            throw SpecError(field: "limits.\(unknown)", "unknown limit '\(unknown)' (known: \(names))")
        }
        var values: [String: Int] = [:]
        for (name, value) in object where !(value is NSNull) {
            guard let number = value as? NSNumber, !isBool(number), number.doubleValue == number.doubleValue.rounded(),
                number.doubleValue >= 1, number.doubleValue <= 9_007_199_254_740_992
            else {
                throw SpecError(field: "limits.\(name)", "limits.\(name) must be a whole number of 1 or more")
            }
            values[name] = number.intValue
        }
        let limits = JobLimits(
            cpu: values["cpu"], memory: values["memory"], files: values["files"], procs: values["procs"],
            cpuPercent: values["cpu_percent"])
        return limits == JobLimits() ? nil : limits
    }

    private static func parseArgs(_ raw: Any?) throws(SpecError) -> [String] {
        guard let raw, !(raw is NSNull) else { return [] }
        if let text = string(raw) {
            guard !text.contains("\0") else { throw SpecError(field: "args", "args must not contain NUL") }
            // `isWhitespace`, not a list of characters: "\r\n" is one Character and equals neither "\r" nor "\n".
            return text.split(whereSeparator: \.isWhitespace).map(String.init)
        }
        guard let list = raw as? [Any] else {
            throw SpecError(field: "args", "args must be a string or an array of strings")
        }
        var args: [String] = []
        for (index, item) in list.enumerated() {
            guard let arg = string(item) else {
                throw SpecError(field: "args", "args[\(index)] must be a string")
            }
            guard !arg.contains("\0") else { throw SpecError(field: "args", "args[\(index)] must not contain NUL") }
            args.append(arg)
        }
        return args
    }

    private static func parseEnv(_ raw: Any?) throws(SpecError) -> [String: String] {
        guard let raw, !(raw is NSNull) else { return [:] }
        guard let object = raw as? [String: Any] else {
            throw SpecError(field: "env", "env must be an object of strings")
        }
        var env: [String: String] = [:]
        for (key, value) in object {
            guard !key.isEmpty, !key.contains("="), !key.contains("\0") else {
                throw SpecError(field: "env", "env name '\(key)' is not a valid variable name")
            }
            guard let text = string(value), !text.contains("\0") else {
                throw SpecError(field: "env", "env.\(key) must be a string")
            }
            env[key] = text
        }
        return env
    }

    private static func parseLabels(_ raw: Any?) throws(SpecError) -> [String: String] {
        guard let raw, !(raw is NSNull) else { return [:] }
        guard let object = raw as? [String: Any] else {
            throw SpecError(field: "labels", "labels must be an object of strings")
        }
        var labels: [String: String] = [:]
        for (key, value) in object {
            guard !key.isEmpty else { throw SpecError(field: "labels", "label names must not be empty") }
            guard let text = string(value) else {
                throw SpecError(field: "labels", "labels.\(key) must be a string")
            }
            labels[key] = text
        }
        return labels
    }

    /// `true` (24×80), `false`, or `{"rows": R, "cols": C}` with both from 1 to 1000.
    private static func parseTerminal(_ raw: Any?) throws(SpecError) -> JobTerminal? {
        guard let raw, !(raw is NSNull) else { return nil }
        if let flag = raw as? NSNumber, isBool(flag) { return flag.boolValue ? .standard : nil }
        let message = "tty must be true, false or {\"rows\": R, \"cols\": C} with both from 1 to 1000"
        guard let object = raw as? [String: Any], Set(object.keys) == ["rows", "cols"],
            let rows = object["rows"] as? NSNumber, let cols = object["cols"] as? NSNumber,
            !isBool(rows), !isBool(cols), rows.doubleValue == rows.doubleValue.rounded(),
            cols.doubleValue == cols.doubleValue.rounded(), (1...1000).contains(rows.doubleValue),
            (1...1000).contains(cols.doubleValue)
        else { throw SpecError(field: "tty", message) }
        return JobTerminal(rows: rows.intValue, cols: cols.intValue)
    }

    private static func optionalString(_ body: [String: Any], _ field: String) throws(SpecError) -> String? {
        guard let raw = body[field], !(raw is NSNull) else { return nil }
        guard let text = string(raw) else { throw SpecError(field: field, "\(field) must be a string") }
        return text
    }

    /// Only http and https callbacks with a host: anything else could reach local files or other schemes.
    public static func validateCallback(_ text: String) throws(SpecError) {
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
        else {
            throw SpecError(field: "callback", "callback must be an http or https URL")
        }
    }

    private static func string(_ value: Any) -> String? {
        if value is NSNumber { return nil }
        return value as? String
    }

    /// Foundation hands JSON booleans back as NSNumber too; their objCType is "c".
    private static func isBool(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c"
    }
}
