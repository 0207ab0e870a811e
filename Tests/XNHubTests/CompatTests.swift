import Foundation
import Testing
import XNHub

/// http-runner's API: shapes, status codes, whitelist, purge order.
@Suite(.timeLimit(.minutes(2)))
struct CompatTests {
    static let compatKeys = ["id", "command", "arguments", "stdout", "stderr", "code", "err", "callback"]

    @Test func postReturns202WithTheJobInHttpRunnersShape() async throws {
        try await withHub { hub in
            let created = try await hub.post("/", #"{"command":"echo","args":"foo  bar"}"#)
            #expect(created.status == 202)
            #expect(created.headers.first(name: "content-type")?.hasPrefix("application/json") == true)
            // Same keys, same order, explicit nulls.
            let keys = try keyOrder(created.text)
            #expect(keys == Self.compatKeys)
            let job = try created.object()
            let id = try #require(job["id"] as? String)
            #expect(id.count == 40 && id.allSatisfy { $0.isHexDigit && !$0.isUppercase })
            #expect(job["command"] as? String == "echo")
            #expect(job["arguments"] as? [String] == ["foo", "bar"])
            #expect(job["stdout"] as? String == "")
            #expect(job["code"] is NSNull)
            #expect(job["err"] is NSNull)
            #expect(job["callback"] is NSNull)

            let done = try await eventually("exit code") { () -> [String: Any]? in
                let got = try await hub.get("/\(id)")
                #expect(got.status == 200)
                let body = try got.object()
                return body["code"] is NSNull ? nil : body
            }
            #expect(done["code"] as? Int == 0)
            #expect(done["stdout"] as? String == "foo bar\n")
            #expect(done["stderr"] as? String == "")
            #expect(try keyOrder(try await hub.get("/\(id)").text) == Self.compatKeys)
            // Optional trailing slash, and ids in upper case find the same job.
            #expect(try await hub.get("/\(id)/").status == 200)
            #expect(try await hub.get("/\(id.uppercased())").status == 200)
        }
    }

    @Test func argsMayBeAnArrayAndNothingPassesThroughAShell() async throws {
        try await withHub { hub in
            let created = try await hub.post("/", #"{"command":"echo","args":["a b","$HOME","*"]}"#)
            let id = try #require(try created.object()["id"] as? String)
            let job = try await hub.ended(id)
            #expect(job["stdout"] as? String == "a b $HOME *\n")
        }
    }

    @Test func unknownIdsAre404AndOtherRoutes501() async throws {
        try await withHub { hub in
            let missing = try await hub.get("/" + String(repeating: "ab", count: 20))
            #expect(missing.status == 404)
            #expect(missing.text == #"{"message":"Not Found"}"#)
            for (method, path) in [
                ("GET", "/"), ("GET", "/abc"), ("PUT", "/"), ("GET", "/a/b/c"),
                ("DELETE", "/" + String(repeating: "0", count: 40)),
            ] {
                let result = try await request(.init(rawValue: method), hub.url + path)
                #expect(result.status == 501, "\(method) \(path)")
                #expect(result.text == #"{"message":"Not Implemented"}"#, "\(method) \(path)")
            }
        }
    }

    @Test(arguments: [
        ("{bad", "body is not valid JSON"),
        ("[1,2]", "body must be a JSON object"),
        (#"{"args":"x"}"#, "command is required"),
        (#"{"command":5}"#, "command must be a string"),
        (#"{"command":null}"#, "command is required"),
        (#"{"command":"echo","args":5}"#, "args must be a string or an array of strings"),
        (#"{"command":"echo","args":["a",1]}"#, "args[1] must be a string"),
        (#"{"command":"echo","callback":"file:///etc/passwd"}"#, "callback must be an http or https URL"),
    ])
    func badRequestsAre400WithAReason(body: String, reason: String) async throws {
        try await withHub { hub in
            let result = try await hub.post("/", body)
            #expect(result.status == 400)
            let object = try result.object()
            #expect(object["message"] as? String == "Bad Request")
            #expect(object["error"] as? String == reason)
            // Nothing was stored.
            let stored = try await hub.get("/v1/jobs").object()["jobs"] as? [Any]
            #expect(stored?.isEmpty == true)
        }
    }

    @Test func whitelistAllowsTheSameProgramsAndNothingThatSlipsPast() async throws {
        let folder = try temporaryFolder()
        // The real files, as the system's own readlink says (Debian's /bin is a link to /usr/bin).
        let trueFile = try await realFile("/bin/true")
        let echoFile = try await realFile("/bin/echo")
        try FileManager.default.createSymbolicLink(atPath: folder + "/harmless", withDestinationPath: "/bin/rm")
        try FileManager.default.createSymbolicLink(atPath: folder + "/also-true", withDestinationPath: "/bin/true")
        try FileManager.default.createSymbolicLink(atPath: folder + "/echo", withDestinationPath: "/bin/rm")
        try await withHub({ $0.whitelist = CommandWhitelist(["echo", "/bin/true"]) }) { hub in
            // http-runner's view echoes the command as the client sent it.
            let compat = try await hub.post("/", #"{"command":"echo","args":"hi"}"#)
            #expect(compat.status == 202)
            #expect(try compat.object()["command"] as? String == "echo")
            // The same programs, however they are spelled: allowed, and the job runs the real file.
            for command in ["/bin/true", "true", "/bin/../bin/true", "//bin/./true", folder + "/also-true"] {
                let allowed = try await hub.post("/v1/jobs", #"{"command":"\#(command)"}"#)
                #expect(allowed.status == 201, "\(command)")
                #expect(try allowed.object()["command"] as? String == command, "\(command)")
                #expect(try allowed.object()["program"] as? String == trueFile, "\(command)")
            }
            let echo = try await hub.post("/v1/jobs", #"{"command":"echo","args":["hi"]}"#)
            #expect(try echo.object()["program"] as? String == echoFile)
            let echoed = try #require(try echo.object()["id"] as? String)
            _ = try await hub.ended(echoed)
            #expect(try await hub.get("/v1/jobs/\(echoed)/stdout").text == "hi\n")
            // Other programs, links to them, relative paths, near-misses: refused.
            for command in ["ls", "echo ", folder + "/harmless", "./true", "bin/true", "/bin/true/", "/no/such/true"] {
                let refused = try await hub.post("/", #"{"command":"\#(command)"}"#)
                #expect(refused.status == 400, "\(command)")
                #expect((try refused.object()["error"] as? String)?.contains("command") == true, "\(command)")
                let v1 = try await hub.post("/v1/jobs", #"{"command":"\#(command)"}"#)
                #expect(v1.status == 403, "\(command)")
            }
            // A job may not choose what a bare name means with its own PATH (a folder whose
            // `echo` is rm): refused while the whitelist is in force, naming the variable.
            let env = try await hub.post("/v1/jobs", #"{"command":"echo","env":{"PATH":"\#(folder)"}}"#)
            #expect(env.status == 403)
            #expect((try env.object()["error"] as? [String: Any])?["field"] as? String == "env.PATH")
        }
    }

    /// A whitelist says which program runs; the job's `env` may not load other code into it.
    @Test func aWhitelistHoldsAgainstTheEnvironment() async throws {
        let folder = try temporaryFolder()
        let marker = folder + "/ran"
        // What BASH_ENV would run in a whitelisted bash script.
        try "touch \(marker)\n".write(toFile: folder + "/evil.sh", atomically: true, encoding: .utf8)
        let script = folder + "/build.sh"
        try "#!/bin/bash\necho building $BUILD_ID\n".write(toFile: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        try await withHub({ $0.whitelist = CommandWhitelist([script]) }) { hub in
            let denied: [(String, String)] = [
                ("LD_PRELOAD", "dynamic loader"), ("LD_LIBRARY_PATH", "dynamic loader"),
                ("BASH_ENV", "shell"), ("ENV", "shell"), ("BASH_FUNC_echo%%", "bash defines functions"),
                ("PYTHONSTARTUP", "python"), ("PERL5OPT", "perl"), ("NODE_OPTIONS", "node"), ("RUBYOPT", "ruby"),
                ("GCONV_PATH", "dynamic loader"), ("GLIBC_TUNABLES", "dynamic loader"), ("GIT_SSH_COMMAND", "git"),
            ]
            for (name, reason) in denied {
                let refused = try await hub.post(
                    "/v1/jobs", #"{"command":"\#(script)","env":{"BUILD_ID":"7","\#(name)":"\#(folder)/evil.sh"}}"#)
                #expect(refused.status == 403, "\(name)")
                let body = try #require(try refused.object()["error"] as? [String: Any])
                #expect(body["code"] as? String == "env_not_allowed", "\(name)")
                #expect(body["field"] as? String == "env.\(name)", "\(name)")
                #expect((body["message"] as? String)?.contains(reason) == true, "\(name): \(body)")
                // http-runner's route refuses it too, in its own shape.
                let compat = try await hub.post("/", #"{"command":"\#(script)","env":{"\#(name)":"x"}}"#)
                #expect(compat.status == 400, "\(name)")
                #expect((try compat.object()["error"] as? String)?.contains(name) == true, "\(name)")
            }
            #expect(!FileManager.default.fileExists(atPath: marker), "no refused job ran")
            let stored = try await hub.get("/v1/jobs").object()["jobs"] as? [Any]
            #expect(stored?.isEmpty == true, "nothing refused was stored")
            // Data in ordinary variables still reaches the whitelisted program.
            let id = try await hub.submit(#"{"command":"\#(script)","env":{"BUILD_ID":"7"}}"#)
            _ = try await hub.ended(id)
            #expect(try await hub.get("/v1/jobs/\(id)/stdout").text == "building 7\n")
        }
        // Without a whitelist any program may run, so the environment is the job's own business.
        try await withHub { hub in
            let id = try await hub.submit(
                #"{"command":"bash","args":["-c","true"],"env":{"BASH_ENV":"\#(folder)/evil.sh"}}"#)
            #expect(try await hub.ended(id)["state"] as? String == "succeeded")
            #expect(FileManager.default.fileExists(atPath: marker))
        }
        // --allow-env: only the names it lists.
        try await withHub({
            $0.whitelist = CommandWhitelist([script])
            $0.environmentPolicy = EnvironmentPolicy(allowed: ["BUILD_ID"])
        }) { hub in
            _ = try await hub.submit(#"{"command":"\#(script)","env":{"BUILD_ID":"8"}}"#)
            let other = try await hub.post("/v1/jobs", #"{"command":"\#(script)","env":{"TARGET":"x"}}"#)
            #expect(other.status == 403)
            #expect(other.text.contains("not in this hub's --allow-env list"))
        }
    }

    @Test func aTokensWhitelistPutsTheEnvironmentRulesInForce() async throws {
        try await withHub { hub in
            let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
            let narrow = try await hub.createToken(#"{"name":"narrow","role":"submit","allow":["true"]}"#, as: admin)
            let refused = try await request(
                .POST, hub.url + "/v1/jobs", body: #"{"command":"true","env":{"LD_PRELOAD":"/tmp/x.so"}}"#,
                headers: [("Authorization", "Bearer \(narrow)")])
            #expect(refused.status == 403)
            #expect((try refused.object()["error"] as? [String: Any])?["field"] as? String == "env.LD_PRELOAD")
            // The admin's token has no whitelist, and neither has the hub.
            let allowed = try await request(
                .POST, hub.url + "/v1/jobs", body: #"{"command":"true","env":{"LD_PRELOAD":""}}"#,
                headers: [("Authorization", "Bearer \(admin)")])
            #expect(allowed.status == 201)
        }
    }

    @Test func aSpawnFailureIsAJobWithErrNotA500() async throws {
        try await withHub { hub in
            let created = try await hub.post("/", #"{"command":"no-such-command-xn"}"#)
            #expect(created.status == 202)
            let id = try #require(try created.object()["id"] as? String)
            let job = try await eventually("err") { () -> [String: Any]? in
                let body = try await hub.get("/\(id)").object()
                return body["err"] is NSNull ? nil : body
            }
            #expect((job["err"] as? String)?.contains("ENOENT") == true)
            #expect(job["code"] is NSNull)
            let plainFile = try temporaryFolder() + "/not-a-program"
            try "hello\n".write(toFile: plainFile, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: plainFile)
            let notExecutable = try await hub.post("/", #"{"command":"\#(plainFile)"}"#)
            let id2 = try #require(try notExecutable.object()["id"] as? String)
            let v1 = try await hub.ended(id2)
            #expect(v1["state"] as? String == "failed")
            #expect((v1["err"] as? String)?.contains("EACCES") == true)
        }
    }

    @Test func theJSONCarriesTheFirst16MiBOfALargeOutputAndTheRawEndpointAllOfIt() async throws {
        try await withHub { hub in
            let created = try await hub.post(
                "/", #"{"command":"sh","args":["-c","head -c 17000000 /dev/zero | tr '\\0' a"]}"#)
            let id = try #require(try created.object()["id"] as? String)
            let v1 = try await hub.ended(id)
            #expect(v1["state"] as? String == "succeeded" && v1["stdout_bytes"] as? Int == 17_000_000, "\(v1)")
            let compat = try await hub.get("/\(id)").object()
            let stdout = try #require(compat["stdout"] as? String)
            #expect(stdout.utf8.count == 16 << 20 && stdout.utf8.allSatisfy { $0 == UInt8(ascii: "a") })
            let raw = try await hub.get("/v1/jobs/\(id)/stdout")
            #expect(raw.status == 200 && raw.body.count == 17_000_000)
        }
    }

    @Test func purgeKeepsTheNewestFinishedJobsAndNeverQueuedOrRunning() async throws {
        try await withHub({
            $0.maxFinishedJobs = 2; $0.slots = 1
        }) { hub in
            var finished: [String] = []
            for index in 0..<4 {
                let id = try await hub.submit(#"{"command":"echo","args":["\#(index)"]}"#)
                _ = try await hub.ended(id)
                finished.append(id)
            }
            let running = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
            let queued = try await hub.submit(#"{"command":"echo","args":["queued"]}"#)
            try await eventually("running") { try await hub.state(running) == "running" ? true : nil }
            // Submitting purged the finished jobs beyond the two newest.
            #expect(try await hub.get("/\(finished[0])").status == 404)
            #expect(try await hub.get("/\(finished[1])").status == 404)
            #expect(try await hub.get("/\(finished[2])").status == 200)
            #expect(try await hub.get("/\(finished[3])").status == 200)
            #expect(try await hub.state(running) == "running")
            #expect(try await hub.state(queued) == "queued")
            _ = try await hub.post("/v1/jobs/\(running)/cancel", "")
            _ = try await hub.ended(queued)
            // The next submission purges down to the two newest finished jobs again.
            _ = try await hub.submit(#"{"command":"true"}"#)
            #expect(try await hub.get("/\(finished[2])").status == 404)
            #expect(try await hub.get("/\(finished[3])").status == 404)
            #expect(try await hub.get("/\(running)").status == 200)
            #expect(try await hub.get("/\(queued)").status == 200)
        }
    }

    @Test func oversizedBodiesAre413() async throws {
        try await withHub({ $0.maxBodyBytes = 1000 }) { hub in
            let big = #"{"command":"echo","args":""# + String(repeating: "x", count: 2000) + #""}"#
            let compat = try await hub.post("/", big)
            #expect(compat.status == 413)
            let v1 = try await hub.post("/v1/jobs", big)
            #expect(v1.status == 413)
            #expect((try v1.object()["error"] as? [String: Any])?["code"] as? String == "body_too_large")
        }
    }
}

/// The top-level keys of a JSON object in the order they appear in the text.
func keyOrder(_ json: String) throws -> [String] {
    guard let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [] }
    return object.keys.sorted { a, b in
        json.range(of: "\"\(a)\":")!.lowerBound < json.range(of: "\"\(b)\":")!.lowerBound
    }
}

/// The real file behind `path`, as coreutils' `readlink -f` says: not the hub's code under test.
func realFile(_ path: String) async throws -> String {
    let child = try ChildProcess("/usr/bin/readlink", ["-f", path])
    guard try await child.exitStatus() == 0 else { throw TestFailure("readlink -f \(path): \(child.stderrText)") }
    return child.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
}
