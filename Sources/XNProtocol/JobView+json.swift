/// The API's job views as JSON, written by hand byte for byte as `JSONEncoder` with `.sortedKeys`
/// and `.withoutEscapingSlashes` writes them (a test holds the two equal). The encoder builds a
/// tree of every value, then sorts each object's keys; for a lookup that was a tenth of the hub's
/// time, for a page of fifty jobs a third. Members are written here in sorted order already.
extension JobView {
    public func json() -> [UInt8] {
        var out = JSONText()
        write(to: &out)
        return out.bytes
    }

    func write(to out: inout JSONText) {
        out.beginObject()
        out.member("args") { $0.strings(args) }
        out.member("attempts", attempts)
        out.member("callback", callback)
        if let callbackDelivery {
            out.member("callback_delivery") { callbackDelivery.write(to: &$0) }
        }
        out.member("callback_status", callbackStatus)
        out.member("command", command)
        out.member("created_at", createdAt)
        out.member("cwd", cwd)
        out.member("err", err)
        out.member("exit_code", exitCode.map(Int.init))
        out.member("finished_at", finishedAt)
        out.member("id", id)
        out.member("interactive", interactive)
        out.member("isolate", isolate)
        if let labels {
            out.member("labels") { $0.sortedObject(labels) }
        }
        if let limits {
            out.member("limits") { limits.write(to: &$0) }
        }
        out.member("max_output", maxOutput)
        out.member("name", name)
        out.member("network", network)
        out.member("owner", owner)
        out.member("program", program)
        out.member("retries", retries)
        out.member("signal", signal.map(Int.init))
        out.member("started_at", startedAt)
        out.member("state", state.rawValue)
        out.member("stderr", stderr)
        out.member("stderr_bytes", stderrBytes)
        out.member("stderr_truncated", stderrTruncated)
        out.member("stdout", stdout)
        out.member("stdout_bytes", stdoutBytes)
        out.member("stdout_truncated", stdoutTruncated)
        out.member("timeout", timeout)
        if let tty {
            out.member("tty") { tty.write(to: &$0) }
        }
        if let usage {
            out.member("usage") {
                $0.beginObject()
                $0.member("cpu_system_seconds", usage.cpuSystemSeconds)
                $0.member("cpu_user_seconds", usage.cpuUserSeconds)
                $0.member("peak_memory_bytes", usage.peakMemoryBytes)
                $0.endObject()
            }
        }
        out.member("waiting", waiting)
        out.member("worker", worker)
        out.endObject()
    }
}

extension JobPage {
    public func json() -> [UInt8] {
        var out = JSONText()
        out.beginObject()
        out.member("jobs") { out in
            out.beginArray()
            for job in jobs { job.write(to: &out) }
            out.endArray()
        }
        out.member("next", next)
        out.endObject()
        return out.bytes
    }
}

extension CallbackDeliveryView {
    fileprivate func write(to out: inout JSONText) {
        out.beginObject()
        out.member("attempts", attempts)
        out.member("last_attempt_at", lastAttemptAt)
        out.member("last_result", lastResult)
        out.member("next_attempt_at", nextAttemptAt)
        out.member("state", state.rawValue)
        out.endObject()
    }
}

extension JobTerminal {
    func write(to out: inout JSONText) {
        out.beginObject()
        out.member("cols", cols)
        out.member("rows", rows)
        out.endObject()
    }
}

extension JobLimits {
    func write(to out: inout JSONText) {
        out.beginObject()
        out.member("cpu", cpu)
        out.member("cpu_percent", cpuPercent)
        out.member("files", files)
        out.member("memory", memory)
        out.member("procs", procs)
        out.endObject()
    }
}

/// JSON text under construction: objects, arrays and scalars written in the order given, commas
/// placed between them; absent optional members are left out, as the encoder leaves them.
struct JSONText {
    private(set) var bytes: [UInt8] = []
    /// Whether the next value or key follows another one at its level.
    private var afterValue = false

    init() {
        bytes.reserveCapacity(1024)
    }

    mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        afterValue = false
    }

    mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        afterValue = true
    }

    mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        afterValue = false
    }

    mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        afterValue = true
    }

    /// A member whose value `body` writes.
    mutating func member(_ key: StaticString, _ body: (inout JSONText) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        afterValue = false
        body(&self)
    }

    mutating func member(_ key: StaticString, _ value: String?) {
        guard let value else { return }
        member(key) { $0.string(value) }
    }

    mutating func member(_ key: StaticString, _ value: Int?) {
        guard let value else { return }
        member(key) { $0.raw(String(value)) }
    }

    mutating func member(_ key: StaticString, _ value: Bool?) {
        guard let value else { return }
        member(key) { $0.raw(value ? "true" : "false") }
    }

    /// As the encoder writes a number: Swift's shortest description, without a trailing ".0".
    mutating func member(_ key: StaticString, _ value: Double?) {
        guard let value else { return }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        member(key) { $0.raw(text) }
    }

    mutating func strings(_ values: [String]) {
        beginArray()
        for value in values { string(value) }
        endArray()
    }

    /// A dictionary of strings, its keys in the encoder's order: by their UTF-8 bytes.
    mutating func sortedObject(_ values: [String: String]) {
        beginObject()
        for key in values.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            separate()
            escape(key)
            bytes.append(UInt8(ascii: ":"))
            afterValue = false
            string(values[key] ?? "")
        }
        endObject()
    }

    mutating func string(_ value: String) {
        separate()
        escape(value)
        afterValue = true
    }

    private mutating func raw(_ text: String) {
        separate()
        bytes.append(contentsOf: text.utf8)
        afterValue = true
    }

    private mutating func separate() {
        if afterValue { bytes.append(UInt8(ascii: ",")) }
    }

    /// A string literal: quote, backslash and control characters escaped, the rest as UTF-8.
    private mutating func escape(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [
                    UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                    hex[Int(byte >> 4)], hex[Int(byte & 0xF)],
                ])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
