import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import Synchronization
import Testing
import XNExec
import XNStore

/// `/v1/jobs/ID/attach`: replay, live output, input, resize, signals, detach, several clients,
/// on the hub's slots and on a worker.
@Suite(.timeLimit(.minutes(2)))
struct AttachTests {
    static let bash =
        #"{"command":"bash","args":["--norc","--noprofile","-i"],"env":{"PS1":"$ "},"tty":{"rows":24,"cols":80}"#

    @Test func typingIntoATerminalJobResizingItAndEndingIt() async throws {
        try await withHub { hub in
            let id = try await hub.submit(Self.bash + "}")
            let seen = try await attach(hub, id) { outbound, seen in
                try await outbound.write(.binary(ByteBuffer(string: "echo $((6*7))\n")))
                try await seen.waitFor("42\r\n")
                try await outbound.write(.text(#"{"type":"resize","rows":40,"cols":100}"#))
                try await outbound.write(.binary(ByteBuffer(string: "stty size\n")))
                try await seen.waitFor("40 100")
                // Ctrl-C typed, and INT sent as a signal, both stop the foreground command, not bash:
                // each is sent once the command runs.
                try await outbound.write(.binary(ByteBuffer(string: "sleep 100.1\n")))
                try await waitForProcess(["sleep", "100.1"])
                try await outbound.write(.binary(ByteBuffer(bytes: [3])))
                try await outbound.write(.binary(ByteBuffer(string: "echo after-$((2+2))\n")))
                try await seen.waitFor("after-4")
                #expect(ProcessTable.members(running: ["sleep", "100.1"]).isEmpty)
                try await outbound.write(.binary(ByteBuffer(string: "sleep 100.2\n")))
                try await waitForProcess(["sleep", "100.2"])
                try await outbound.write(.text(#"{"type":"signal","signal":"INT"}"#))
                try await outbound.write(.binary(ByteBuffer(string: "echo again-$((3+3))\n")))
                try await seen.waitFor("again-6")
                try await outbound.write(.binary(ByteBuffer(string: "exit 5\n")))
                try await seen.waitForExit()
            }
            #expect(seen.exit?["state"] as? String == "failed")
            #expect(seen.exit?["exit_code"] as? Int == 5)
        }
    }

    @Test func detachLeavesTheJobRunningAndASecondClientGetsTheReplayAndLiveOutput() async throws {
        try await withHub { hub in
            let id = try await hub.submit(Self.bash + "}")
            _ = try await attach(hub, id) { outbound, seen in
                try await outbound.write(.binary(ByteBuffer(string: "echo one-$((0+1))\n")))
                try await seen.waitFor("one-1")
                try await outbound.write(.text(#"{"type":"detach"}"#))
                try await seen.waitForClose()
            }
            // The hub has handled the detach (it closed the session): the job goes on.
            #expect(try await hub.get("/v1/jobs/\(id)").object()["state"] as? String == "running")
            // A watcher and a typist at once: both see the same output; the watcher cannot type.
            let watcher = Task {
                try await attach(hub, id, query: "mode=read-only") { outbound, seen in
                    try await seen.waitFor("one-1")  // the replay
                    try await outbound.write(.binary(ByteBuffer(string: "echo sneaky\n")))
                    try await seen.waitForError("read-only")
                    try await seen.waitForExit()
                }
            }
            let typist = try await attach(hub, id) { outbound, seen in
                try await seen.waitFor("one-1")
                try await outbound.write(.binary(ByteBuffer(string: "echo two-$((1+1))\n")))
                try await seen.waitFor("two-2")
                try await outbound.write(.binary(ByteBuffer(string: "exit\n")))
                try await seen.waitForExit()
            }
            let watched = try await watcher.value
            #expect(watched.text.contains("two-2"))
            #expect(watched.discontinuities == 0 && typist.discontinuities == 0)
            #expect(!watched.text.contains("sneaky"))
            #expect(typist.text.hasPrefix(watched.text.prefix(typist.text.count / 2)))
        }
    }

    @Test func offsetsResumeWhereTheClientLeftOffAndAFinishedJobReportsItsEnd() async throws {
        try await withHub { hub in
            let id = try await hub.submit(#"{"command":"sh","args":["-c","printf abcdef; printf XY >&2; exit 2"]}"#)
            _ = try await hub.ended(id)
            let seen = try await attach(hub, id, query: "stdout=3&stderr=1") { _, seen in try await seen.waitForExit() }
            #expect(seen.text == "def")
            #expect(seen.discontinuities == 0)
            #expect(seen.errorText == "Y")
            #expect(seen.exit?["exit_code"] as? Int == 2)
        }
    }

    @Test func aClientAttachedAllAlongGetsEachKeptByteOnceAndNothingBeyondTheCap() async throws {
        try await withHub { hub in
            // The job writes once the client types, so the client is attached from its first byte.
            let id = try await hub.submit(
                #"{"command":"sh","args":["-c","read go; \"$0\" bytes 3000000 31; \"$0\" bytes 5000 32 >&2","\#(Binaries.testtask)"],"interactive":true,"max_output":1000000}"#
            )
            let seen = try await attach(hub, id) { outbound, seen in
                try await outbound.write(.binary(ByteBuffer(string: "go\n")))
                try await seen.waitForExit()
            }
            #expect(seen.discontinuities == 0)
            let shownWhole = seen.stdoutBytes == generatedBytes(count: 1_000_000, seed: 31)
            #expect(shownWhole, "\(seen.stdoutBytes.count) bytes of stdout shown, not the first 1,000,000 written")
            #expect(seen.stderrBytes == generatedBytes(count: 5000, seed: 32))
            #expect(seen.exit?["stdout_truncated"] as? Bool == true)
            #expect(try await hub.get("/v1/jobs/\(id)/stdout").body == seen.stdoutBytes)
        }
    }

    @Test func inputToAJobWithoutOpenStdinIsRefusedAndTerminateEndsIt() async throws {
        try await withHub { hub in
            let id = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
            try await eventually("running") { try await hub.state(id) == "running" ? true : nil }
            let seen = try await attach(hub, id) { outbound, seen in
                try await outbound.write(.binary(ByteBuffer(string: "hello\n")))
                try await seen.waitForError("input is closed")
                try await outbound.write(.text(#"{"type":"terminate"}"#))
                try await seen.waitForExit()
            }
            #expect(seen.exit?["state"] as? String == "canceled")
        }
    }

    @Test func inputTypedBeforeAJobStartsReachesItOnTheHubAndOnAWorker() async throws {
        try await withHub({ $0.slots = 1 }) { hub in
            let blocker = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
            let local = try await hub.submit(#"{"command":"cat","interactive":true}"#)
            let remote = try await hub.submit(#"{"command":"cat","interactive":true,"labels":{"at":"late"}}"#)
            // The hub handles a session's messages in order: its answer to an unknown one, sent
            // last, says the input before it was taken.
            let taken = Tally()
            func typeEarly(_ id: String, _ text: String) -> Task<AttachTranscript, any Error> {
                Task { [hub] in
                    try await attach(hub, id) { outbound, seen in
                        try await outbound.write(.binary(ByteBuffer(string: text)))
                        try await outbound.write(.text(#"{"type":"close_stdin"}"#))
                        try await outbound.write(.text(#"{"type":"taken?"}"#))
                        try await seen.waitForError("unknown message type 'taken?'")
                        taken.add()
                        try await seen.waitForExit()
                    }
                }
            }
            let early = typeEarly(local, "typed early\n")
            let later = typeEarly(remote, "before the worker\n")
            try await eventually("both inputs taken") { taken.count == 2 ? true : nil }
            #expect(try await hub.state(local) == "queued", "the input came before the job started")
            #expect(try await hub.state(remote) == "queued")
            _ = try await hub.post("/v1/jobs/\(blocker)/cancel", "")
            let worker = try TestWorker.start(hub: hub.url, name: "late", labels: ["at": "late"])
            let localSeen = try await early.value
            let remoteSeen = try await later.value
            #expect(localSeen.text == "typed early\n")
            #expect(localSeen.exit?["exit_code"] as? Int == 0)
            #expect(remoteSeen.text == "before the worker\n")
            #expect(remoteSeen.exit?["worker"] as? String == "late")
            await worker.stop()
        }
    }

    /// Input is queued until the process runs and then written at once by whoever receives it:
    /// frames sent back to back across that switch must still arrive whole and in order.
    @Test func framesSentBackToBackAcrossTheJobsStartArriveInOrderOnTheHubAndOnAWorker() async throws {
        try await withHub({ $0.slots = 1 }) { hub in
            var worker: TestWorker?
            for placement in ["hub", "worker"] {
                if placement == "worker" {
                    worker = try TestWorker.start(hub: hub.url, name: "typist", labels: ["at": "worker"], slots: 1)
                    try await hub.waitForWorkers(["typist"])
                }
                let labels = placement == "worker" ? #","labels":{"at":"worker"}"# : ""
                let blocker = try await hub.submit(#"{"command":"sleep","args":["30"]\#(labels)}"#)
                let id = try await hub.submit(#"{"command":"cat","interactive":true\#(labels)}"#)
                let lines = (0..<600).map { "line \($0) of \(placement)\n" }
                let seen = try await attach(hub, id) { outbound, seen in
                    for line in lines[..<100] { try await outbound.write(.binary(ByteBuffer(string: line))) }
                    try await outbound.write(.text(#"{"type":"taken?"}"#))
                    try await seen.waitForError("unknown message type 'taken?'")
                    #expect(try await hub.state(id) == "queued", "the first frames came before the job started")
                    _ = try await hub.post("/v1/jobs/\(blocker)/cancel", "")
                    // No waiting from here: the job starts while these arrive.
                    for line in lines[100...] { try await outbound.write(.binary(ByteBuffer(string: line))) }
                    try await outbound.write(.text(#"{"type":"close_stdin"}"#))
                    try await seen.waitForExit()
                }
                #expect(seen.text == lines.joined(), "on the \(placement)")
                #expect(seen.exit?["exit_code"] as? Int == 0)
            }
            await worker?.stop()
        }
    }

    @Test func attachingToAJobOnAWorkerWorksTheSameWay() async throws {
        try await withHub({ $0.slots = 0 }) { hub in
            let worker = try TestWorker.start(hub: hub.url, name: "tty-worker")
            try await hub.waitForWorkers(["tty-worker"])
            let id = try await hub.submit(Self.bash + "}")
            let seen = try await attach(hub, id) { outbound, seen in
                try await outbound.write(.binary(ByteBuffer(string: "echo $((6*7))\n")))
                try await seen.waitFor("42\r\n")
                try await outbound.write(.text(#"{"type":"resize","rows":33,"cols":99}"#))
                try await outbound.write(.binary(ByteBuffer(string: "stty size\n")))
                try await seen.waitFor("33 99")
                try await outbound.write(.binary(ByteBuffer(string: "exit 4\n")))
                try await seen.waitForExit()
            }
            #expect(seen.exit?["exit_code"] as? Int == 4)
            #expect(seen.exit?["worker"] as? String == "tty-worker")
            await worker.stop()
        }
    }

    /// hummingbird-websocket keeps each upgraded connection's context in a reference that context
    /// holds: unbroken, a hub kept about 1.6 KB of every attach and worker connection, and the
    /// route's handler with its scheduler and store, for as long as it ran.
    @Test func aStoppedHubLetsGoOfItsStoreAfterAttachSessionsAndAWorkerConnection() async throws {
        weak var released: SQLiteJobStore?
        do {
            let store = try SQLiteJobStore(path: nil)
            released = store
            try await withHub({ $0.store = store }) { hub in
                let id = try await hub.submit(#"{"command":"echo","args":["hi"]}"#)
                _ = try await hub.ended(id)
                for _ in 0..<3 {
                    let seen = try await attach(hub, id) { _, seen in try await seen.waitForExit() }
                    #expect(seen.text == "hi\n")
                }
                let worker = try TestWorker.start(hub: hub.url, name: "leak-worker")
                try await hub.waitForWorkers(["leak-worker"])
                await worker.stop()
            }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while released != nil && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(released == nil, "the stopped hub's store is still held")
    }
}

/// A count several tasks add to.
final class Tally: Sendable {
    private let value = Mutex(0)
    var count: Int { value.withLock { $0 } }
    func add() { value.withLock { $0 += 1 } }
}

/// What an attached test client received.
final class AttachTranscript: Sendable {
    private struct State {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var errors: [String] = []
        var exitJSON: String?
        var next: [UInt8: Int] = [:]
        var discontinuities = 0
        var closed = false
    }

    private let state = Mutex(State())

    var text: String { String(decoding: state.withLock { $0.stdout }, as: UTF8.self) }
    var stdoutBytes: [UInt8] { state.withLock { $0.stdout } }
    var stderrBytes: [UInt8] { state.withLock { $0.stderr } }
    /// Frames that did not start where the previous one of their stream ended (should be none).
    var discontinuities: Int { state.withLock { $0.discontinuities } }
    var errorText: String { String(decoding: state.withLock { $0.stderr }, as: UTF8.self) }
    var exit: [String: Any]? {
        guard let json = state.withLock({ $0.exitJSON }),
            let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        else { return nil }
        return object["job"] as? [String: Any]
    }

    func take(_ message: WebSocketMessage) {
        switch message {
        case .binary(var buffer):
            guard let stream = buffer.readInteger(as: UInt8.self), let offset = buffer.readInteger(as: UInt64.self)
            else { return }
            state.withLock { state in
                // Each frame must continue exactly where the previous one of its stream ended.
                let expected = state.next[stream] ?? Int(offset)
                if Int(offset) != expected { state.discontinuities += 1 }
                state.next[stream] = Int(offset) + buffer.readableBytes
                if stream == 1 {
                    state.stdout += Array(buffer.readableBytesView)
                } else {
                    state.stderr += Array(buffer.readableBytesView)
                }
            }
        case .text(let text):
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                return
            }
            state.withLock { state in
                if object["type"] as? String == "exit" { state.exitJSON = text }
                if let message = object["message"] as? String { state.errors.append(message) }
            }
        }
    }

    func waitFor(_ text: String) async throws {
        try await eventually("output \(text.debugDescription)") { self.text.contains(text) ? true : nil }
    }

    func waitForError(_ text: String) async throws {
        try await eventually("error \(text.debugDescription)") {
            state.withLock { $0.errors.contains { $0.contains(text) } } ? true : nil
        }
    }

    func waitForExit() async throws {
        try await eventually("exit notice") { state.withLock { $0.exitJSON != nil } ? true : nil }
    }

    /// The hub closed the connection (the reader saw its end).
    func markClosed() {
        state.withLock { $0.closed = true }
    }

    func waitForClose() async throws {
        try await eventually("the hub to close the connection") { state.withLock { $0.closed } ? true : nil }
    }
}

/// Attaches to job `id`, runs `body` with the connection, and returns what it received.
func attach(
    _ hub: TestHub, _ id: String, query: String = "", token: String? = nil,
    _ body: @escaping @Sendable (WebSocketOutboundWriter, AttachTranscript) async throws -> Void
) async throws -> AttachTranscript {
    var fields = HTTPFields()
    if let token { fields[.authorization] = "Bearer \(token)" }
    let headers = fields
    let transcript = AttachTranscript()
    let url = "ws://127.0.0.1:\(hub.port)/v1/jobs/\(id)/attach" + (query.isEmpty ? "" : "?\(query)")
    let logger = Logger(label: "test.attach") { _ in SwiftLogNoOpLogHandler() }
    let finished = try await withDeadline(.seconds(30)) {
        try await WebSocketClient.connect(
            url: url, configuration: .init(maxFrameSize: 4 << 20, additionalHeaders: headers), logger: logger
        ) { inbound, outbound, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await message in inbound.messages(maxSize: 4 << 20) { transcript.take(message) }
                    transcript.markClosed()
                }
                try await body(outbound, transcript)
                group.cancelAll()
            }
        }
        return true
    }
    guard finished == true else { throw TestFailure("attach to \(id) did not finish in time") }
    return transcript
}
