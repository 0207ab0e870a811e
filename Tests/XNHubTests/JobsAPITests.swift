import Foundation
import Testing

/// The v1 API: submit, get, list, raw output, cancel, timeouts, limits.
@Suite(.timeLimit(.minutes(2)))
struct JobsAPITests {
    @Test func submitWithWaitReturnsTheEndedJob() async throws {
        try await withHub { hub in
            let result = try await hub.post(
                "/v1/jobs?wait=10",
                #"{"command":"sh","args":["-c","printf out; printf err >&2; exit 3"],"name":"three"}"#)
            #expect(result.status == 201)
            let job = try result.object()
            #expect(job["state"] as? String == "failed")
            #expect(job["exit_code"] as? Int == 3)
            #expect(job["stdout"] as? String == "out")
            #expect(job["stderr"] as? String == "err")
            #expect(job["name"] as? String == "three")
            #expect(job["worker"] as? String == "local")
            #expect(job["started_at"] is String && job["finished_at"] is String)
        }
    }

    @Test func envCwdAndStdinReachTheProcess() async throws {
        try await withHub { hub in
            let folder = try temporaryFolder()
            let env = try await hub.submit(
                #"{"command":"\#(Binaries.testtask)","args":["env","XN_T"],"env":{"XN_T":"v=1"}}"#)
            #expect(try await hub.ended(env)["stdout"] as? String == "v=1\n")
            let cwd = try await hub.submit(#"{"command":"\#(Binaries.testtask)","args":["pwd"],"cwd":"\#(folder)"}"#)
            let pwd = try await hub.ended(cwd)["stdout"] as? String
            #expect(
                pwd.map { URL(fileURLWithPath: $0.trimmingCharacters(in: .newlines)).resolvingSymlinksInPath().path }
                    == URL(fileURLWithPath: folder).resolvingSymlinksInPath().path)
            let cat = try await hub.submit(#"{"command":"cat","stdin":"line one\nline two\n"}"#)
            #expect(try await hub.ended(cat)["stdout"] as? String == "line one\nline two\n")
            let badCwd = try await hub.submit(#"{"command":"true","cwd":"/no/such/folder"}"#)
            let failed = try await hub.ended(badCwd)
            #expect(failed["state"] as? String == "failed")
            #expect((failed["err"] as? String)?.contains("/no/such/folder") == true)
        }
    }

    @Test func aJobInheritsNoDescriptorOfTheHubBeyondItsStdio() async throws {
        try await withHub { hub in
            let id = try await hub.submit(#"{"command":"ls","args":["-1","/proc/self/fd"]}"#)
            // 0, 1, 2, and the directory ls itself opened to list them.
            #expect(try await hub.ended(id)["stdout"] as? String == "0\n1\n2\n3\n")
        }
    }

    @Test func timeoutKillsTheWholeProcessTree() async throws {
        try await withHub { hub in
            let folder = try temporaryFolder()
            let pidFile = folder + "/pids"
            let id = try await hub.submit(
                #"{"command":"\#(Binaries.testtask)","args":["spawn-child","\#(pidFile)"],"timeout":1}"#)
            let pids = try await eventually("pid file") { try? readPids(pidFile) }
            let job = try await hub.ended(id)
            #expect(job["state"] as? String == "timed_out")
            #expect((job["err"] as? String)?.contains("timed out after 1s") == true)
            try await eventually("child and grandchild gone", timeout: .seconds(5)) {
                pids.allSatisfy(processIsGone) ? true : nil
            }
        }
    }

    @Test func cancelKillsTheTreeAndASecondCancelIs409() async throws {
        try await withHub({ $0.killGrace = .milliseconds(300) }) { hub in
            let folder = try temporaryFolder()
            let pidFile = folder + "/pids"
            let id = try await hub.submit(#"{"command":"\#(Binaries.testtask)","args":["spawn-child","\#(pidFile)"]}"#)
            let pids = try await eventually("pid file") { try? readPids(pidFile) }
            let canceled = try await hub.post("/v1/jobs/\(id)/cancel", "")
            #expect(canceled.status == 200)
            #expect(try canceled.object()["state"] as? String == "canceled")
            try await eventually("child and grandchild gone", timeout: .seconds(5)) {
                pids.allSatisfy(processIsGone) ? true : nil
            }
            let again = try await hub.post("/v1/jobs/\(id)/cancel", "")
            #expect(again.status == 409)
            #expect((try again.object()["error"] as? [String: Any])?["code"] as? String == "job_finished")
            // A job that ignores SIGTERM is killed after the grace period.
            let stubborn = try await hub.submit(#"{"command":"\#(Binaries.testtask)","args":["ignore-term","60"]}"#)
            try await eventually("ready") {
                try await hub.get("/v1/jobs/\(stubborn)/stdout").text == "ready\n" ? true : nil
            }
            let killed = try await hub.post("/v1/jobs/\(stubborn)/cancel", "")
            #expect(try killed.object()["state"] as? String == "canceled")
            #expect(try killed.object()["signal"] as? Int == 9)
        }
    }

    @Test func queuedJobsCanBeCanceledAndNeverRun() async throws {
        try await withHub({ $0.slots = 1 }) { hub in
            let blocker = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
            let waiting = try await hub.submit(#"{"command":"echo","args":["never"]}"#)
            #expect(try await hub.state(waiting) == "queued")
            let canceled = try await hub.post("/v1/jobs/\(waiting)/cancel", "")
            #expect(try canceled.object()["state"] as? String == "canceled")
            _ = try await hub.post("/v1/jobs/\(blocker)/cancel", "")
            let job = try await hub.ended(waiting)
            #expect(job["started_at"] == nil)
            #expect(job["stdout_bytes"] as? Int == 0)
        }
    }

    @Test func queuedJobsRunOldestFirstWhenASlotFrees() async throws {
        try await withHub({ $0.slots = 1 }) { hub in
            let blocker = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
            var queued: [String] = []
            for index in 0..<4 {
                queued.append(try await hub.submit(#"{"command":"echo","args":["\#(index)"]}"#))
            }
            for id in queued { #expect(try await hub.state(id) == "queued") }
            _ = try await hub.post("/v1/jobs/\(blocker)/cancel", "")
            var started: [String] = []
            for id in queued {
                let job = try await hub.ended(id)
                started.append(try #require(job["started_at"] as? String))
            }
            #expect(started == started.sorted())
            // With the queue empty again, a new job starts at once.
            let next = try await hub.post("/v1/jobs?wait=10", #"{"command":"true"}"#)
            #expect(try next.object()["state"] as? String == "succeeded")
        }
    }

    @Test func binaryOutputRoundTripsByteForByte() async throws {
        try await withHub { hub in
            let count = 3_000_001
            let id = try await hub.submit(#"{"command":"\#(Binaries.testtask)","args":["bytes","\#(count)","7"]}"#)
            let job = try await hub.ended(id)
            #expect(job["stdout_bytes"] as? Int == count)
            let raw = try await hub.get("/v1/jobs/\(id)/stdout")
            #expect(raw.status == 200)
            #expect(raw.headers.first(name: "content-type") == "application/octet-stream")
            #expect(raw.headers.first(name: "x-xn-total-bytes") == String(count))
            #expect(raw.body == generatedBytes(count: count, seed: 7))
            let tail = try await hub.get("/v1/jobs/\(id)/stdout?offset=\(count - 10)")
            #expect(tail.body == Array(generatedBytes(count: count, seed: 7).suffix(10)))
            let slice = try await hub.get("/v1/jobs/\(id)/stdout?offset=65530&limit=12")
            #expect(slice.body == Array(generatedBytes(count: count, seed: 7)[65530..<65542]))
        }
    }

    @Test func invalidUTF8IsReplacedInJSONAndExactInRawOutput() async throws {
        try await withHub { hub in
            let id = try await hub.submit(#"{"command":"printf","args":["a\\377b\\303\\251"]}"#)
            let job = try await hub.ended(id)
            #expect(job["stdout"] as? String == "a\u{FFFD}bé")
            #expect(try await hub.get("/v1/jobs/\(id)/stdout").body == [0x61, 0xFF, 0x62, 0xC3, 0xA9])
        }
    }

    @Test func outputBeyondTheCapIsDroppedAndFlagged() async throws {
        try await withHub({ $0.maxOutputBytes = 1000 }) { hub in
            let id = try await hub.submit(#"{"command":"\#(Binaries.testtask)","args":["bytes","50000","3"]}"#)
            let job = try await hub.ended(id)
            #expect(job["state"] as? String == "succeeded")
            #expect(job["stdout_bytes"] as? Int == 1000)
            #expect(job["stdout_truncated"] as? Bool == true)
            #expect(job["stderr_truncated"] as? Bool == false)
            let raw = try await hub.get("/v1/jobs/\(id)/stdout")
            #expect(raw.body == Array(generatedBytes(count: 1000, seed: 3)))
            #expect(raw.headers.first(name: "x-xn-truncated") == "true")
        }
    }

    @Test func aJobViewCarriesTheFirstMiBOfOutputAndTheRawEndpointAllOfIt() async throws {
        try await withHub { hub in
            let count = 3 << 20
            let id = try await hub.submit(#"{"command":"sh","args":["-c","head -c \#(count) /dev/zero | tr '\\0' a"]}"#)
            let job = try await hub.ended(id)
            #expect(job["stdout_bytes"] as? Int == count)
            #expect(job["stdout_truncated"] as? Bool == false)
            #expect((job["stdout"] as? String)?.utf8.count == 1 << 20)
            let raw = try await hub.get("/v1/jobs/\(id)/stdout")
            #expect(raw.body == [UInt8](repeating: UInt8(ascii: "a"), count: count))
        }
    }

    @Test func beyondMaxQueuedSubmissionsGet429AndNothingStoredIsLost() async throws {
        try await withHub({
            $0.slots = 1; $0.maxQueued = 2
        }) { hub in
            let running = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
            let first = try await hub.submit(#"{"command":"true"}"#)
            let second = try await hub.submit(#"{"command":"true"}"#)
            let refused = try await hub.post("/v1/jobs", #"{"command":"true"}"#)
            #expect(refused.status == 429)
            #expect((try refused.object()["error"] as? [String: Any])?["code"] as? String == "queue_full")
            let compat = try await hub.post("/", #"{"command":"true"}"#)
            #expect(compat.status == 429)
            #expect(try compat.object()["message"] as? String == "Too Many Requests")
            #expect(try await hub.state(running) == "running")
            #expect(try await hub.state(first) == "queued")
            #expect(try await hub.state(second) == "queued")
            _ = try await hub.post("/v1/jobs/\(second)/cancel", "")
            #expect(try await hub.post("/v1/jobs", #"{"command":"true"}"#).status == 201)
            _ = try await hub.post("/v1/jobs/\(running)/cancel", "")
            #expect(try await hub.ended(first)["state"] as? String == "succeeded")
        }
    }

    @Test func listFiltersByStateAndPagesNewestFirst() async throws {
        try await withHub { hub in
            var ids: [String] = []
            for index in 0..<5 {
                let id = try await hub.submit(#"{"command":"echo","args":["\#(index)"]}"#)
                _ = try await hub.ended(id)
                ids.append(id)
            }
            let failed = try await hub.submit(#"{"command":"false"}"#)
            _ = try await hub.ended(failed)
            let first = try await hub.get("/v1/jobs?limit=4").object()
            let firstIDs = (first["jobs"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
            #expect(firstIDs == [failed] + ids.reversed().prefix(3))
            let cursor = try #require(first["next"] as? String)
            let second = try await hub.get("/v1/jobs?limit=4&before=\(cursor)").object()
            #expect((second["jobs"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [ids[1], ids[0]])
            #expect(second["next"] == nil)
            let onlyFailed = try await hub.get("/v1/jobs?state=failed").object()
            #expect((onlyFailed["jobs"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [failed])
            // Lists carry no output text.
            #expect((first["jobs"] as? [[String: Any]])?.first?["stdout"] == nil)
            for bad in ["state=done", "limit=0", "limit=x", "before=-1"] {
                let refused = try await hub.get("/v1/jobs?\(bad)")
                #expect(refused.status == 400, "\(bad)")
                #expect((try refused.object()["error"] as? [String: Any])?["field"] != nil)
            }
        }
    }

    @Test(arguments: [
        (#"{"command":"echo","timout":3}"#, "timout"),
        (#"{"command":"echo","timeout":-1}"#, "timeout"),
        (#"{"command":"echo","timeout":"5"}"#, "timeout"),
        (#"{"command":"echo","env":{"A":1}}"#, "env"),
        (#"{"command":"echo","env":[]}"#, "env"),
        (#"{"command":"echo","cwd":7}"#, "cwd"),
        (#"{"command":"echo","callback":"ftp://x"}"#, "callback"),
        (#"{"command":["echo"]}"#, "command"),
        (#"{"command":""}"#, "command"),
    ])
    func badFieldsAre400NamingTheField(body: String, field: String) async throws {
        try await withHub { hub in
            let result = try await hub.post("/v1/jobs", body)
            #expect(result.status == 400)
            let error = try #require(try result.object()["error"] as? [String: Any])
            #expect(error["code"] as? String == "invalid_field")
            #expect(error["field"] as? String == field)
            #expect((error["message"] as? String)?.isEmpty == false)
        }
    }

    @Test func unknownJobsAndBadQueriesGiveJSONErrors() async throws {
        try await withHub { hub in
            let zeros = String(repeating: "0", count: 40)
            for path in ["/v1/jobs/\(zeros)", "/v1/jobs/\(zeros)/stdout", "/v1/jobs/xyz"] {
                let result = try await hub.get(path)
                #expect(result.status == 404, "\(path)")
                #expect((try result.object()["error"] as? [String: Any])?["code"] as? String == "job_not_found")
            }
            #expect(try await hub.post("/v1/jobs/\(zeros)/cancel", "").status == 404)
            #expect(try await hub.post("/v1/jobs", "not json").status == 400)
            #expect(try await hub.get("/v1/jobs/\(zeros)?wait=-3").status == 400)
            #expect(try await hub.get("/v1/nothing").status == 404)
        }
    }
}

func readPids(_ path: String) throws -> [Int32] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let pids = text.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
    guard pids.count == 2 else { throw TestFailure("pid file incomplete") }
    return pids
}

/// The bytes `xn-testtask bytes COUNT SEED` writes.
func generatedBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        for index in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            buffer[index] = UInt8(truncatingIfNeeded: state >> 33)
        }
        initialized = count
    }
}
