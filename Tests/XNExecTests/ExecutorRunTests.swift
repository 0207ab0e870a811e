import Foundation
import Synchronization
import Testing
import XNExec
import XNProtocol

/// Conformance: what every executor does with a process that runs to its end.
@Suite("JobExecutor: running", .timeLimit(.minutes(1)))
struct ExecutorRunTests {
    @Test("the exit code is reported as data", arguments: executors, [0, 1, 3, 255])
    func exitCode(executor: any JobExecutor, code: Int32) async throws {
        let finished = try await run(executor, TestTask.request("exit", "\(code)"))
        #expect(finished.result.termination == .exited(code))
        #expect(finished.result.stdoutBytes == 0 && finished.result.stderrBytes == 0)
        #expect(finished.chunks.isEmpty)
    }

    @Test("both streams arrive byte-exact and in order", arguments: executors)
    func binaryOutput(executor: any JobExecutor) async throws {
        let finished = try await run(
            executor, TestTask.shell(#""$0" bytes 3000000 11 && "$0" bytes 1000001 12 >&2"#))
        #expect(finished.result.termination == .exited(0))
        #expect(finished.result.stdoutBytes == 3_000_000)
        #expect(finished.result.stderrBytes == 1_000_001)
        #expect(finished.bytes(.stdout) == generatedBytes(count: 3_000_000, seed: 11))
        #expect(finished.bytes(.stderr) == generatedBytes(count: 1_000_001, seed: 12))
    }

    @Test("unread output holds the process back instead of filling memory", arguments: executors)
    func backpressure(executor: any JobExecutor) async throws {
        let count = 16 << 20  // far beyond what the hand-off and the pipe hold
        let process = try executor.start(TestTask.request("bytes", "\(count)", "4", outputLimit: count))
        // Nobody reads: the process must still be blocked on its pipe well after it could have finished.
        try await Task.sleep(for: .seconds(1))
        #expect(await process.result(timeout: .milliseconds(100)) == nil)
        var bytes: [UInt8] = []
        for await chunk in process.output {
            bytes += chunk.bytes
        }
        #expect(bytes.count == count)
        #expect(bytes == generatedBytes(count: count, seed: 4))
        #expect(await process.result().termination == .exited(0))
    }

    @Test("writes separated by a pause keep their order across streams", arguments: executors)
    func interleaving(executor: any JobExecutor) async throws {
        let finished = try await run(
            executor,
            TestTask.shell(#""$0" echo one; "$0" sleep 0.2; "$0" stderr two; "$0" sleep 0.2; "$0" echo three"#))
        let order = finished.chunks.map { "\($0.stream):\(String(decoding: $0.bytes, as: UTF8.self))" }
        #expect(order == ["stdout:one\n", "stderr:two\n", "stdout:three\n"])
    }

    @Test("stdin receives the given bytes exactly, then end of file", arguments: executors)
    func standardInput(executor: any JobExecutor) async throws {
        // Not UTF-8, with NULs, and larger than a pipe buffer so the writer has to wait for the reader.
        let input: [UInt8] = [0xff, 0xfe, 0x00, 0xc3, 0x28, 0x0a] + generatedBytes(count: 300_000, seed: 5)
        let finished = try await run(executor, TestTask.request("cat", standardInput: input))
        #expect(finished.result.termination == .exited(0))
        #expect(finished.bytes(.stdout) == input)
    }

    @Test("without input, stdin is empty and closed", arguments: executors)
    func noInput(executor: any JobExecutor) async throws {
        let finished = try await run(executor, TestTask.request("cat"))
        #expect(finished.result.termination == .exited(0))
        #expect(finished.result.stdoutBytes == 0 && finished.result.stderrBytes == 0)
    }

    @Test("a process that never reads its stdin still ends normally", arguments: executors)
    func unreadInput(executor: any JobExecutor) async throws {
        let input = generatedBytes(count: 1_000_000, seed: 6)
        let finished = try await run(executor, TestTask.request("exit", "4", standardInput: input))
        #expect(finished.result.termination == .exited(4))
    }

    @Test("the environment is the runner's with the request's variables on top", arguments: executors)
    func environment(executor: any JobExecutor) async throws {
        let value = "spaces, = signs and ünïcode"
        let environment = ["XN_TEST_VALUE": value, "HOME": "/xn-nowhere"]
        let set = try await run(executor, TestTask.request("env", "XN_TEST_VALUE", environment: environment))
        #expect(set.stdout == value + "\n")
        let overridden = try await run(executor, TestTask.request("env", "HOME", environment: environment))
        #expect(overridden.stdout == "/xn-nowhere\n")
        let inherited = try await run(executor, TestTask.request("env", "PATH", environment: environment))
        #expect(inherited.stdout == (ProcessInfo.processInfo.environment["PATH"] ?? "") + "\n")
        let unset = try await run(executor, TestTask.request("env", "XN_TEST_SURELY_UNSET"))
        #expect(unset.result.termination == .exited(1))
    }

    @Test("the working directory is applied", arguments: executors)
    func workingDirectory(executor: any JobExecutor) async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let finished = try await run(executor, TestTask.request("pwd", workingDirectory: directory))
        #expect(finished.stdout == directory + "\n")
    }

    @Test(
        "a command that does not exist throws ENOENT", arguments: executors,
        ["xn-no-such-command-4f1b", "/nonexistent/xn-no-such-command"])
    func missingCommand(executor: any JobExecutor, command: String) {
        let error = #expect(throws: SpawnError.self) {
            _ = try executor.start(ProcessRequest(command: command))
        }
        #expect(error?.code == ENOENT)
        #expect(error?.description.contains("ENOENT") == true, "\(error?.description ?? "")")
    }

    @Test("a working directory that does not exist throws, naming it", arguments: executors)
    func missingDirectory(executor: any JobExecutor) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let missing = directory + "/missing"
        let error = #expect(throws: SpawnError.self) {
            _ = try executor.start(TestTask.request("pwd", workingDirectory: missing))
        }
        #expect(error?.description.contains(missing) == true, "\(error?.description ?? "")")

        let file = directory + "/file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        let notDirectory = #expect(throws: SpawnError.self) {
            _ = try executor.start(TestTask.request("pwd", workingDirectory: file))
        }
        #expect(notDirectory?.description.contains(file) == true, "\(notDirectory?.description ?? "")")
    }

    @Test("outputLimit keeps the first bytes of each stream but counts them all", arguments: executors)
    func outputLimit(executor: any JobExecutor) async throws {
        var request = TestTask.shell(#""$0" bytes 1000000 21 && "$0" bytes 99999 22 >&2"#)
        request.outputLimit = 100_000
        let finished = try await run(executor, request)
        #expect(finished.result.termination == .exited(0))
        #expect(finished.bytes(.stdout) == generatedBytes(count: 100_000, seed: 21))
        #expect(finished.bytes(.stderr) == generatedBytes(count: 99_999, seed: 22))
        #expect(finished.result.stdoutBytes == 1_000_000)
        #expect(finished.result.stderrBytes == 99_999)
    }

    @Test("showOutput sees each kept chunk at its offset before output yields it", arguments: executors)
    func shownBeforeYielded(executor: any JobExecutor) async throws {
        let shown = Mutex<[OutputStreamKind: [(offset: Int, bytes: [UInt8])]]>([:])
        var request = TestTask.shell(#""$0" bytes 1000000 24 && "$0" bytes 99999 25 >&2"#)
        request.outputLimit = 300_000
        request.showOutput = { stream, offset, bytes in
            shown.withLock { $0[stream, default: []].append((offset, bytes)) }
        }
        let process = try executor.start(request)
        var yielded: [OutputStreamKind: [[UInt8]]] = [:]
        for await chunk in process.output {
            yielded[chunk.stream, default: []].append(chunk.bytes)
            // Shown already, as the same chunk: a viewer never lags the consumer.
            let shownSoFar = shown.withLock { $0[chunk.stream]?.map(\.bytes) ?? [] }
            #expect(shownSoFar.count >= yielded[chunk.stream]!.count)
            #expect(shownSoFar.prefix(yielded[chunk.stream]!.count).last == chunk.bytes)
        }
        #expect(await process.result().termination == .exited(0))
        let seen = shown.withLock { $0 }
        for (stream, count, seed) in [(OutputStreamKind.stdout, 300_000, UInt64(24)), (.stderr, 99_999, UInt64(25))] {
            let pieces = seen[stream] ?? []
            // Offsets run on from one chunk to the next, from 0, and stop at the limit.
            #expect(pieces.map(\.offset) == pieces.indices.map { pieces[..<$0].reduce(0) { $0 + $1.bytes.count } })
            let bytes = pieces.flatMap(\.bytes)
            let whole = bytes == generatedBytes(count: count, seed: seed)
            #expect(whole, "\(stream): \(bytes.count) bytes shown, not the first \(count) written")
            #expect(pieces.map(\.bytes) == yielded[stream] ?? [])
        }
    }

    @Test("a fast writer's output is kept whole, up to a limit that falls inside a read", arguments: executors)
    func fastWriterUpToLimit(executor: any JobExecutor) async throws {
        // 4 MiB fills the pipe, so it is grown and read in whole chunks; the limit cuts one of
        // them short.
        var request = TestTask.request("bytes", "\(4 << 20)", "23")
        request.outputLimit = 3_000_001
        let finished = try await run(executor, request)
        #expect(finished.result.termination == .exited(0))
        let kept = finished.bytes(.stdout)
        #expect(kept.count == 3_000_001)
        // Compared before #expect sees it: its diff of megabytes on a failure would take minutes.
        let keptWhole = kept == generatedBytes(count: 3_000_001, seed: 23)
        #expect(keptWhole, "the kept bytes differ from the first 3,000,001 written")
        #expect(finished.result.stdoutBytes == 4 << 20)
    }
}
