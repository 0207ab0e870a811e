import Foundation
import Glibc
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import Testing
import XNProtocol

/// Remote workers: routing by labels, slots, output integrity, loss, fencing, drain, bad peers.
@Suite(.timeLimit(.minutes(3)))
struct WorkerTests {
    @Test func jobsGoToAWorkerWithTheirLabelsAndWaitWhenNoneMatches() async throws {
        try await withHub({ $0.slots = 0 }) { hub in
            let gpu = try TestWorker.start(hub: hub.url, name: "gpu-box", labels: ["gpu": "1"])
            let cpu = try TestWorker.start(hub: hub.url, name: "cpu-box", labels: ["arch": "x86"])
            try await hub.waitForWorkers(["gpu-box", "cpu-box"])
            let onGPU = try await hub.submit(#"{"command":"echo","args":["g"],"labels":{"gpu":"1"}}"#)
            let onCPU = try await hub.submit(#"{"command":"echo","args":["c"],"labels":{"arch":"x86"}}"#)
            let anywhere = try await hub.submit(#"{"command":"echo","args":["any"]}"#)
            let nowhere = try await hub.submit(#"{"command":"echo","labels":{"gpu":"2"}}"#)
            let gpuJob = try await hub.ended(onGPU)
            #expect(gpuJob["worker"] as? String == "gpu-box")
            #expect(gpuJob["stdout"] as? String == "g\n")
            #expect(try await hub.ended(onCPU)["worker"] as? String == "cpu-box")
            #expect(["gpu-box", "cpu-box"].contains(try await hub.ended(anywhere)["worker"] as? String ?? ""))
            let waiting = try await hub.get("/v1/jobs/\(nowhere)").object()
            #expect(waiting["state"] as? String == "queued")
            #expect(waiting["waiting"] as? String == "waiting for a worker with gpu=2")
            let listed = try await runXN(["workers", "--json"], hub: hub.url)
            let workers = try #require(
                try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
            #expect(workers.compactMap { $0["name"] as? String } == ["cpu-box", "gpu-box"])
            #expect(workers.last?["labels"] as? [String: String] == ["gpu": "1"])
            await gpu.stop()
            await cpu.stop()
        }
    }

    @Test func aWorkerRunsNoMoreJobsThanItHasSlots() async throws {
        try await withHub({ $0.slots = 0 }) { hub in
            let worker = try TestWorker.start(hub: hub.url, name: "one-slot", slots: 1)
            try await hub.waitForWorkers(["one-slot"])
            // The first job holds the slot until told to let go.
            let go = try temporaryFolder() + "/go"
            let first = try await hub.submit(
                #"{"command":"sh","args":["-c","while [ ! -e \#(go) ]; do sleep 0.02; done"]}"#)
            let second = try await hub.submit(#"{"command":"echo","args":["second"]}"#)
            try await eventually("first holding the slot") {
                ["assigned", "running"].contains(try await hub.state(first)) ? true : nil
            }
            #expect(try await hub.state(second) == "queued")
            let workers = try await hub.get("/v1/workers").object()["workers"] as? [[String: Any]]
            #expect(workers?.first?["running"] as? Int == 1)
            #expect(try await hub.state(second) == "queued", "still waiting while the slot is held")
            #expect(FileManager.default.createFile(atPath: go, contents: nil))
            #expect(try await hub.ended(second)["stdout"] as? String == "second\n")
            #expect(try await hub.ended(first)["state"] as? String == "succeeded")
            await worker.stop()
        }
    }

    @Test func largeBinaryOutputArrivesByteForByte() async throws {
        try await withHub({
            $0.slots = 0; $0.maxOutputBytes = 64 << 20
        }) { hub in
            let worker = try TestWorker.start(hub: hub.url, name: "bulk")
            try await hub.waitForWorkers(["bulk"])
            let count = 8_000_000
            let id = try await hub.submit(#"{"command":"\#(Binaries.testtask)","args":["bytes","\#(count)","11"]}"#)
            let job = try await hub.ended(id, timeout: .seconds(60))
            #expect(job["state"] as? String == "succeeded")
            #expect(job["stdout_bytes"] as? Int == count)
            let raw = try await hub.get("/v1/jobs/\(id)/stdout?limit=\(count)")
            #expect(raw.body == generatedBytes(count: count, seed: 11))
            await worker.stop()
        }
    }

    @Test func cancelAndTimeoutKillTheProcessGroupOnTheWorker() async throws {
        try await withHub({
            $0.slots = 0; $0.killGrace = .milliseconds(500)
        }) { hub in
            let worker = try TestWorker.start(hub: hub.url, name: "killer")
            try await hub.waitForWorkers(["killer"])
            let folder = try temporaryFolder()
            let timed = try await hub.submit(
                #"{"command":"\#(Binaries.testtask)","args":["spawn-child","\#(folder)/a"],"timeout":1}"#)
            let canceled = try await hub.submit(
                #"{"command":"\#(Binaries.testtask)","args":["spawn-child","\#(folder)/b"]}"#)
            let timedPids = try await eventually("pids a") { try? readPids(folder + "/a") }
            let canceledPids = try await eventually("pids b") { try? readPids(folder + "/b") }
            let answer = try await hub.post("/v1/jobs/\(canceled)/cancel", "")
            #expect(try answer.object()["state"] as? String == "canceled")
            let timedJob = try await hub.ended(timed)
            #expect(timedJob["state"] as? String == "timed_out")
            try await eventually("all four processes gone", timeout: .seconds(5)) {
                (timedPids + canceledPids).allSatisfy(processIsGone) ? true : nil
            }
            await worker.stop()
        }
    }

    @Test func aWorkerSpeakingAnotherProtocolIsToldWhy() async throws {
        try await withHub { hub in
            let reply = try await firstMessage(from: hub, subprotocol: "xn.v2", send: nil)
            #expect(reply?.refusal?.contains("protocol mismatch") == true)
            #expect(reply?.refusal?.contains("this hub speaks xn.v3, the worker offered xn.v2") == true)
            // The name of the hub's own slots is not for a remote worker.
            let local = try await firstMessage(
                from: hub, subprotocol: "xn.v3", send: [.hello(WorkerHello(name: "local", slots: 1, version: "t"))])
            #expect(local?.refusal?.contains("reserved for the hub's own slots") == true)
        }
    }

    @Test func malformedAndOversizedFramesCloseOnlyThatConnection() async throws {
        try await withHub({ $0.slots = 0 }) { hub in
            let worker = try TestWorker.start(hub: hub.url, name: "good")
            try await hub.waitForWorkers(["good"])
            let long = try await hub.submit(#"{"command":"sh","args":["-c","sleep 1; echo fine"]}"#)
            let hello = WorkerMessage.hello(WorkerHello(name: "bad", slots: 1, version: "t"))
            let garbage = try await firstMessage(from: hub, subprotocol: "xn.v3", send: [hello], then: .text("{nope"))
            #expect(garbage?.refusal == "malformed message: {nope")
            let shortFrame = try await firstMessage(
                from: hub, subprotocol: "xn.v3", send: [hello], then: .binary(ByteBuffer(bytes: [1, 2, 3])))
            #expect(shortFrame?.refusal == "malformed output frame")
            let before = try await firstMessage(
                from: hub, subprotocol: "xn.v3", send: nil, then: .text(#"{"type":"heartbeat"}"#))
            #expect(before?.refusal == "expected hello first")
            // A frame over the 1 MiB limit closes the connection without an answer.
            let huge = try await firstMessage(
                from: hub, subprotocol: "xn.v3", send: [hello],
                then: .binary(ByteBuffer(bytes: [UInt8](repeating: 1, count: 2 << 20))))
            #expect(huge == nil)
            let job = try await hub.ended(long)
            #expect(job["state"] as? String == "succeeded")
            #expect(job["stdout"] as? String == "fine\n")
            await worker.stop()
        }
    }
}

/// Connects as a raw WebSocket peer, sends `send` (then `then`), and returns the first message
/// other than welcome that the hub sends back (nil if the connection closed without one); throws
/// when the hub does neither within 20 s, so a hang never passes for a close.
func firstMessage(
    from hub: TestHub, subprotocol: String, send: [WorkerMessage]?,
    then extra: WebSocketOutboundWriter.OutboundFrame? = nil
) async throws -> HubMessage? {
    var fields = HTTPFields()
    fields[.secWebSocketProtocol] = subprotocol
    let headers = fields
    let found = MessageBox()
    let url = "ws://127.0.0.1:\(hub.port)/v1/worker"
    let logger = Logger(label: "test.peer") { _ in SwiftLogNoOpLogHandler() }
    let ended = try await withDeadline(.seconds(20)) { () -> Bool in
        _ = try await WebSocketClient.connect(
            url: url, configuration: .init(maxFrameSize: 4 << 20, additionalHeaders: headers), logger: logger
        ) { inbound, outbound, _ in
            for message in send ?? [] {
                try await outbound.write(.text(String(decoding: try JSONEncoder().encode(message), as: UTF8.self)))
            }
            if let extra { try await outbound.write(extra) }
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .text(let text) = message,
                    let decoded = try? JSONDecoder().decode(HubMessage.self, from: Data(text.utf8))
                else { continue }
                switch decoded {
                case .welcome, .ack: continue
                default: break
                }
                found.set(decoded)
                return
            }
        }
        return true
    }
    guard ended == true else { throw TestFailure("the hub neither answered nor closed the connection in 20 s") }
    return found.get()
}

final class MessageBox: @unchecked Sendable {
    private let lock = NSLock()
    private var message: HubMessage?
    func set(_ value: HubMessage) { lock.withLock { message = value } }
    func get() -> HubMessage? { lock.withLock { message } }
}

extension HubMessage {
    /// The reason of a refusal.
    var refusal: String? {
        if case .refused(let reason) = self { return reason }
        return nil
    }
}
