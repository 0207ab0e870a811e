import Foundation
import Testing
import XNProtocol

/// Parses `json` as a request body.
private func parse(_ json: String, strict: Bool) throws(SpecError) -> JobSpec {
    try JobSpec.parse(json: Array(json.utf8), strict: strict)
}

/// The error `json` is refused with, or nil if it parses.
private func refusal(_ json: String, strict: Bool) -> SpecError? {
    do {
        _ = try parse(json, strict: strict)
        return nil
    } catch {
        return error
    }
}

@Suite("JobSpec.parse")
struct JobSpecParseTests {
    @Test("a full body keeps every field", arguments: [true, false])
    func fullBody(strict: Bool) throws {
        let spec = try parse(
            """
            {"command": "make", "args": ["-j", "2"], "env": {"CC": "clang", "EMPTY": ""}, "cwd": "/src",
             "timeout": 2.5, "stdin": "in", "name": "build", "callback": "https://example.com/done"}
            """, strict: strict)
        #expect(
            spec
                == JobSpec(
                    command: "make", args: ["-j", "2"], env: ["CC": "clang", "EMPTY": ""], cwd: "/src", timeout: 2.5,
                    stdin: "in", name: "build", callback: "https://example.com/done"))
    }

    @Test("http-runner's args string is split on whitespace", arguments: [true, false])
    func argsString(strict: Bool) throws {
        let spec = try parse(#"{"command": "ls", "args": "  -l\t-a \n /tmp\r\nx\r  "}"#, strict: strict)
        #expect(spec.args == ["-l", "-a", "/tmp", "x"])
    }

    @Test("an args array is kept verbatim, spaces and empty strings included", arguments: [true, false])
    func argsArray(strict: Bool) throws {
        let spec = try parse(#"{"command": "printf", "args": ["a b", "", "$HOME"]}"#, strict: strict)
        #expect(spec.args == ["a b", "", "$HOME"])
    }

    @Test("absent or null optional fields give defaults", arguments: [true, false])
    func defaults(strict: Bool) throws {
        let spec = try parse(#"{"command": "true", "args": null, "env": null, "timeout": null}"#, strict: strict)
        #expect(spec == JobSpec(command: "true"))
    }

    @Test(
        "command must be a non-empty string",
        arguments: [true, false],
        [#"{}"#, #"{"command": null}"#, #"{"command": 5}"#, #"{"command": ["ls"]}"#, #"{"command": ""}"#])
    func badCommand(strict: Bool, body: String) {
        #expect(refusal(body, strict: strict)?.field == "command")
    }

    @Test("args of the wrong type are refused", arguments: [true, false], [#"5"#, #"{"a": "b"}"#, #"true"#])
    func argsWrongType(strict: Bool, args: String) {
        #expect(refusal(#"{"command": "ls", "args": \#(args)}"#, strict: strict)?.field == "args")
    }

    @Test("a non-string args element is named by its index", arguments: [true, false])
    func argsElement(strict: Bool) throws {
        let error = try #require(refusal(#"{"command": "ls", "args": ["-l", 3]}"#, strict: strict))
        #expect(error.field == "args")
        #expect(error.message.contains("args[1]"))
    }

    @Test(
        "env must be an object of strings with valid names",
        arguments: [true, false],
        [#""A=B""#, #"["A=B"]"#, #"{"A": 1}"#, #"{"A": true}"#, #"{"A": null}"#, #"{"A=B": "c"}"#, #"{"": "c"}"#])
    func badEnv(strict: Bool, env: String) {
        #expect(refusal(#"{"command": "env", "env": \#(env)}"#, strict: strict)?.field == "env")
    }

    @Test(
        "timeout must be a positive number of seconds",
        arguments: [true, false], [#""10""#, "-1", "0", "true", "false", "31536001", #"[1]"#])
    func badTimeout(strict: Bool, timeout: String) {
        #expect(refusal(#"{"command": "sleep", "timeout": \#(timeout)}"#, strict: strict)?.field == "timeout")
    }

    @Test("whole and fractional timeouts are accepted", arguments: [true, false])
    func goodTimeout(strict: Bool) throws {
        #expect(try parse(#"{"command": "sleep", "timeout": 1}"#, strict: strict).timeout == 1)
        #expect(try parse(#"{"command": "sleep", "timeout": 0.25}"#, strict: strict).timeout == 0.25)
    }

    @Test(
        "callback must be an http(s) URL",
        arguments: [true, false],
        [#""ftp://example.com/x""#, #""file:///etc/passwd""#, #""not a url""#, #""http://""#, "5"])
    func badCallback(strict: Bool, callback: String) {
        #expect(refusal(#"{"command": "ls", "callback": \#(callback)}"#, strict: strict)?.field == "callback")
    }

    @Test("http and https callbacks are accepted", arguments: [true, false])
    func goodCallback(strict: Bool) throws {
        for url in ["http://127.0.0.1:8080/cb", "https://example.com/hook?job=1", "HTTPS://EXAMPLE.COM/"] {
            #expect(try parse(#"{"command": "ls", "callback": "\#(url)"}"#, strict: strict).callback == url)
        }
    }

    @Test("an unknown field is refused only when strict, and named")
    func unknownField() throws {
        let body = #"{"command": "sleep", "timout": 5}"#
        let error = try #require(refusal(body, strict: true))
        #expect(error.field == "timout")
        #expect(try parse(body, strict: false) == JobSpec(command: "sleep"))
    }

    @Test(
        "a body that is not JSON, or not an object, is refused as a whole",
        arguments: [true, false], ["", "{", "command=ls", #"["ls"]"#, #""ls""#, "42", "null"])
    func badBody(strict: Bool, body: String) throws {
        let error = try #require(refusal(body, strict: strict))
        #expect(error.field == nil)
    }

    @Test("limits and max_output are whole numbers a job may set")
    func limits() throws {
        let spec = try parse(
            #"{"command":"x","limits":{"cpu":5,"memory":268435456,"files":64,"procs":null},"max_output":0}"#,
            strict: true)
        #expect(spec.limits == JobLimits(cpu: 5, memory: 268_435_456, files: 64))
        #expect(spec.maxOutput == 0)
        #expect(try parse(#"{"command":"x","limits":{}}"#, strict: true).limits == nil)
        let cases: [(String, String)] = [
            (#""limits":{"cpus":1}"#, "limits.cpus"), (#""limits":{"cpu":0}"#, "limits.cpu"),
            (#""limits":{"memory":1.5}"#, "limits.memory"), (#""limits":{"files":true}"#, "limits.files"),
            (#""limits":{"procs":"9"}"#, "limits.procs"), (#""limits":[1]"#, "limits"),
            (#""max_output":-1"#, "max_output"), (#""max_output":"1M""#, "max_output"),
        ]
        for (field, expected) in cases {
            #expect(refusal(#"{"command":"x","# + field + "}", strict: true)?.field == expected, "\(field)")
        }
    }

    @Test("a CPU share, isolation and network are a job's to ask for, and survive the store's encoding")
    func isolationAndCPUShare() throws {
        let spec = try parse(
            #"{"command":"x","limits":{"cpu_percent":150},"isolate":true,"network":true}"#, strict: true)
        #expect(spec.limits == JobLimits(cpuPercent: 150))
        #expect(spec.isolate && spec.network)
        let stored = try JSONDecoder().decode(JobSpec.self, from: JSONEncoder().encode(spec))
        #expect(stored == spec)
        let plain = try parse(#"{"command":"x","isolate":null}"#, strict: true)
        #expect(!plain.isolate && !plain.network)
        let cases: [(String, String)] = [
            (#""isolate":"yes""#, "isolate"), (#""network":1"#, "network"),
            (#""limits":{"cpu_percent":0}"#, "limits.cpu_percent"),
            (#""limits":{"cpu_percent":12.5}"#, "limits.cpu_percent"),
        ]
        for (field, expected) in cases {
            #expect(refusal(#"{"command":"x","# + field + "}", strict: true)?.field == expected, "\(field)")
        }
    }

    @Test("NUL in a string args is refused like in an array, and an empty label name is named")
    func nulAndEmptyLabel() {
        #expect(
            refusal(#"{"command":"echo","args":"a\u0000b c"}"#, strict: false)?.message == "args must not contain NUL")
        #expect(
            refusal(#"{"command":"x","labels":{"":"v"}}"#, strict: true)?.message == "label names must not be empty")
    }
}
