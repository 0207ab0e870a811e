public import Foundation

/// A stored spec read back: every job view decodes one, and `JSONDecoder` was the largest share
/// of a lookup's CPU after SQLite (a fifth of a page's). The store wrote each spec itself, so a
/// hand-written reader takes the shapes `JobSpec.encode` writes; anything else (a null, a
/// fraction where an integer goes, a repeated key, bad UTF-8) goes to `JSONDecoder`, which then
/// decides, so the result is always what `JSONDecoder` would give.
extension JobSpec {
    /// The spec as the store keeps it: the members `encode(to:)` writes, written by hand (the
    /// encoder was 1.7% of a hub's CPU under submissions), in the shapes `readStored` takes. A
    /// timeout JSON cannot hold (infinite) goes to `JSONEncoder`, which refuses it as before.
    public func storedJSON() throws -> Data {
        if let timeout, !timeout.isFinite { return try JSONEncoder().encode(self) }
        var out = JSONText()
        out.beginObject()
        out.member("command", command)
        out.member("program", program)
        out.member("args") { $0.strings(args) }
        out.member("env") { $0.sortedObject(env) }
        out.member("cwd", cwd)
        out.member("timeout", timeout)
        out.member("stdin", stdin)
        out.member("name", name)
        out.member("callback", callback)
        out.member("labels") { $0.sortedObject(labels) }
        out.member("retries", retries)
        if let tty {
            out.member("tty") { tty.write(to: &$0) }
        }
        if interactive { out.member("interactive", true) }
        if let limits {
            out.member("limits") { limits.write(to: &$0) }
        }
        out.member("max_output", maxOutput)
        if isolate { out.member("isolate", true) }
        if network { out.member("network", true) }
        out.endObject()
        return Data(out.bytes)
    }

    public static func decodeStored(_ data: Data) throws -> JobSpec {
        if let spec = readStored(data) { return spec }
        return try JSONDecoder().decode(JobSpec.self, from: data)
    }

    /// The spec in `data` when it has a shape the store writes; nil leaves it to `JSONDecoder`.
    static func readStored(_ data: Data) -> JobSpec? {
        data.withUnsafeBytes { bytes in
            var reader = StoredSpecReader(bytes)
            return reader.spec()
        }
    }
}

/// Reads one JSON object into a `JobSpec`, or gives nil at the first thing it does not take.
private struct StoredSpecReader {
    private let bytes: UnsafeRawBufferPointer
    private var at = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func spec() -> JobSpec? {
        var spec = JobSpec(command: "")
        var seen: UInt32 = 0
        let complete = object { name, reader in
            guard let key = SpecKey(name), seen & key.bit == 0 else { return false }
            seen |= key.bit
            switch key {
            case .command: return reader.read(into: &spec.command) { $0.string() }
            case .program: return reader.read(into: &spec.program) { $0.string() }
            case .args: return reader.read(into: &spec.args) { $0.strings() }
            case .env: return reader.read(into: &spec.env) { $0.stringMap() }
            case .cwd: return reader.read(into: &spec.cwd) { $0.string() }
            case .timeout: return reader.read(into: &spec.timeout) { $0.double() }
            case .stdin: return reader.read(into: &spec.stdin) { $0.string() }
            case .name: return reader.read(into: &spec.name) { $0.string() }
            case .callback: return reader.read(into: &spec.callback) { $0.string() }
            case .labels: return reader.read(into: &spec.labels) { $0.stringMap() }
            case .retries: return reader.read(into: &spec.retries) { $0.int() }
            case .tty: return reader.read(into: &spec.tty) { $0.terminal() }
            case .interactive: return reader.read(into: &spec.interactive) { $0.bool() }
            case .limits: return reader.read(into: &spec.limits) { $0.limits() }
            case .maxOutput: return reader.read(into: &spec.maxOutput) { $0.int() }
            case .isolate: return reader.read(into: &spec.isolate) { $0.bool() }
            case .network: return reader.read(into: &spec.network) { $0.bool() }
            }
        }
        skipSpace()
        guard complete, seen & SpecKey.command.bit != 0, at == bytes.count else { return nil }
        return spec
    }

    /// The members `JobSpec.encode` writes, each taken once: a bit each in a mask of those seen.
    private enum SpecKey: Int {
        case command, program, args, env, cwd, timeout, stdin, name, callback, labels, retries, tty, interactive
        case limits, isolate, network, maxOutput

        init?(_ name: String) {
            switch name {
            case "command": self = .command
            case "program": self = .program
            case "args": self = .args
            case "env": self = .env
            case "cwd": self = .cwd
            case "timeout": self = .timeout
            case "stdin": self = .stdin
            case "name": self = .name
            case "callback": self = .callback
            case "labels": self = .labels
            case "retries": self = .retries
            case "tty": self = .tty
            case "interactive": self = .interactive
            case "limits": self = .limits
            case "isolate": self = .isolate
            case "network": self = .network
            case "max_output": self = .maxOutput
            default: return nil
            }
        }

        var bit: UInt32 { 1 << UInt32(rawValue) }
    }

    /// Sets a field from `value`, failing when there is none (a null goes to `JSONDecoder` too).
    private mutating func read<T>(into field: inout T, _ value: (inout StoredSpecReader) -> T?) -> Bool {
        guard let read = value(&self) else { return false }
        field = read
        return true
    }

    /// Sets an optional field from `value`, failing when there is none.
    private mutating func read<T>(into field: inout T?, _ value: (inout StoredSpecReader) -> T?) -> Bool {
        guard let read = value(&self) else { return false }
        field = read
        return true
    }

    private mutating func terminal() -> JobTerminal? {
        var rows: Int?
        var cols: Int?
        let complete = object { key, reader in
            guard let value = reader.int() else { return false }
            switch key {
            case "rows" where rows == nil: rows = value
            case "cols" where cols == nil: cols = value
            default: return false
            }
            return true
        }
        guard complete, let rows, let cols else { return nil }
        return JobTerminal(rows: rows, cols: cols)
    }

    private mutating func limits() -> JobLimits? {
        var limits = JobLimits()
        var seen: Set<String> = []
        let complete = object { key, reader in
            guard seen.insert(key).inserted, let value = reader.int() else { return false }
            switch key {
            case "cpu": limits.cpu = value
            case "memory": limits.memory = value
            case "files": limits.files = value
            case "procs": limits.procs = value
            case "cpu_percent": limits.cpuPercent = value
            default: return false
            }
            return true
        }
        return complete ? limits : nil
    }

    private mutating func strings() -> [String]? {
        skipSpace()
        guard take(UInt8(ascii: "[")) else { return nil }
        var values: [String] = []
        skipSpace()
        if take(UInt8(ascii: "]")) { return values }
        repeat {
            guard let value = string() else { return nil }
            values.append(value)
            skipSpace()
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "]")) ? values : nil
    }

    private mutating func stringMap() -> [String: String]? {
        var values: [String: String] = [:]
        let complete = object { key, reader in
            guard values[key] == nil, let value = reader.string() else { return false }
            values[key] = value
            return true
        }
        return complete ? values : nil
    }

    /// An object whose members `member` reads (it returns false to give up); true when it closed.
    private mutating func object(_ member: (String, inout StoredSpecReader) -> Bool) -> Bool {
        skipSpace()
        guard take(UInt8(ascii: "{")) else { return false }
        skipSpace()
        if take(UInt8(ascii: "}")) { return true }
        repeat {
            guard let key = string() else { return false }
            skipSpace()
            guard take(UInt8(ascii: ":")), member(key, &self) else { return false }
            skipSpace()
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "}"))
    }

    private mutating func string() -> String? {
        skipSpace()
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = at
        // The common string has no escape: its bytes are the value's UTF-8.
        while at < bytes.count {
            let byte = bytes[at]
            if byte == UInt8(ascii: "\"") {
                let value = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
                at += 1
                return value
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            at += 1
        }
        var utf8 = Array(bytes[start..<at])
        while at < bytes.count {
            let byte = bytes[at]
            at += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(validating: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard at < bytes.count else { return nil }
                let escaped = bytes[at]
                at += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    guard let scalar = escapedScalar() else { return nil }
                    UTF8.encode(scalar) { utf8.append($0) }
                default: return nil
                }
            case 0..<0x20:
                return nil
            default:
                utf8.append(byte)
            }
        }
        return nil
    }

    /// The scalar of a `\u` escape whose `\u` is read, joining a surrogate pair; nil for a lone half.
    private mutating func escapedScalar() -> Unicode.Scalar? {
        guard let first = hex4() else { return nil }
        if (0xD800..<0xDC00).contains(first) {
            guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let second = hex4(),
                (0xDC00..<0xE000).contains(second)
            else { return nil }
            return Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
        }
        return Unicode.Scalar(first)
    }

    private mutating func hex4() -> UInt32? {
        guard at + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = bytes[at].hexValue else { return nil }
            at += 1
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// A plain integer (a fraction or an exponent goes to `JSONDecoder`).
    private mutating func int() -> Int? {
        skipSpace()
        let start = at
        guard integerPart() else { return nil }
        if at < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[at]) {
            return nil
        }
        return Int(text(start..<at))
    }

    /// A number in JSON's grammar, finite as a Double.
    private mutating func double() -> Double? {
        skipSpace()
        let start = at
        guard integerPart() else { return nil }
        if take(UInt8(ascii: ".")), digits() == 0 { return nil }
        if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
            if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
            if digits() == 0 { return nil }
        }
        guard let value = Double(text(start..<at)), value.isFinite else { return nil }
        return value
    }

    /// A number's sign and integer digits, with no leading zero (JSON's grammar).
    private mutating func integerPart() -> Bool {
        _ = take(UInt8(ascii: "-"))
        let first = at
        let count = digits()
        return count == 1 || count > 1 && bytes[first] != UInt8(ascii: "0")
    }

    private mutating func digits() -> Int {
        let start = at
        while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
        return at - start
    }

    private mutating func bool() -> Bool? {
        skipSpace()
        if literal("true") { return true }
        if literal("false") { return false }
        return nil
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard at + count <= bytes.count else { return false }
        for index in 0..<count where bytes[at + index] != word.utf8Start[index] { return false }
        at += count
        return true
    }

    private func text(_ range: Range<Int>) -> Substring {
        Substring(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard at < bytes.count, bytes[at] == byte else { return false }
        at += 1
        return true
    }

    private mutating func skipSpace() {
        while at < bytes.count {
            switch bytes[at] {
            case 0x20, 0x09, 0x0A, 0x0D: at += 1
            default: return
            }
        }
    }
}
