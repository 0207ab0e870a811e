import Foundation
import Synchronization
import XNClient
import XNExec

/// Keystroke echo and output rate through `/v1/jobs/ID/attach`, beside a local pty.
enum AttachBench {
    /// A program that echoes each byte at once: raw mode, no line discipline echo, then cat.
    static let echoCommand = ["sh", "-c", "stty raw -echo; echo ready; exec cat"]

    /// Byte → echo round trips on a pty this process holds: the floor.
    static func localPTY(iterations: Int) async throws -> Sample {
        let process = try PipeExecutor().start(
            ProcessRequest(
                command: echoCommand[0], arguments: Array(echoCommand.dropFirst()),
                terminal: TerminalSize(rows: 24, columns: 80)))
        var output = process.output.makeAsyncIterator()
        var seen: [UInt8] = []
        while !String(decoding: seen, as: UTF8.self).contains("ready") {
            guard let chunk = await output.next() else { throw BenchError("echo program ended") }
            seen += chunk.bytes
        }
        var durations: [Double] = []
        let began = now()
        for index in 0..<iterations {
            let key = UInt8(ascii: "a") + UInt8(index % 26)
            let start = now()
            try process.send([key])
            while true {
                guard let chunk = await output.next() else { throw BenchError("echo program ended") }
                if chunk.bytes.contains(key) { break }
            }
            durations.append(now() - start)
        }
        let wall = now() - began
        process.signal(SIGKILL)
        while await output.next() != nil {}
        _ = await process.result()
        return Sample(durations: durations, wall: wall)
    }

    /// The same echo as `throughHub` on a hub that runs nothing itself, through one worker on loopback.
    static func throughWorker(iterations: Int) async throws -> Sample {
        let hub = try await BenchHub.start(slots: 0)
        let worker = BenchWorker(hub: hub.url, slots: 1)
        try await hub.waitForWorkers(1)
        let sample = try await throughHub(hub, iterations: iterations)
        await worker.stop()
        await hub.stop()
        return sample
    }

    /// Byte → echo round trips through the hub's attach endpoint (and its worker, if it has one).
    static func throughHub(_ hub: BenchHub, iterations: Int) async throws -> Sample {
        let id = try await hub.submitJSON(
            #"{"command":"sh","args":["-c","stty raw -echo; echo ready; exec cat"],"tty":true}"#)
        let client = AttachClient(hub: hub.url, job: id)
        let (events, sink) = AsyncStream.makeStream(of: [UInt8].self)
        let session = Task {
            try await client.run { event in
                if case .output(_, let bytes) = event { sink.yield(bytes) }
            }
        }
        var incoming = events.makeAsyncIterator()
        var seen: [UInt8] = []
        while !String(decoding: seen, as: UTF8.self).contains("ready") {
            guard let bytes = await incoming.next() else { throw BenchError("attach ended") }
            seen += bytes
        }
        var durations: [Double] = []
        let began = now()
        for index in 0..<iterations {
            let key = UInt8(ascii: "a") + UInt8(index % 26)
            let start = now()
            client.send(.input([key]))
            while true {
                guard let bytes = await incoming.next() else { throw BenchError("attach ended") }
                if bytes.contains(key) { break }
            }
            durations.append(now() - start)
        }
        let wall = now() - began
        client.send(.terminate)
        _ = try await session.value
        return Sample(durations: durations, wall: wall)
    }

    /// Bytes per second an attached client receives from a job writing `bytes` to stdout.
    static func outputRate(_ hub: BenchHub, bytes: Int) async throws -> Double {
        let began = now()
        let id = try await hub.submitJSON(#"{"command":"head","args":["-c","\#(bytes)","/dev/zero"]}"#)
        let received = Atomic<Int>(0)
        let client = AttachClient(hub: hub.url, job: id, readOnly: true)
        let end = try await client.run { event in
            if case .output(_, let chunk) = event { received.add(chunk.count, ordering: .relaxed) }
        }
        guard case .exited = end, received.load(ordering: .relaxed) == bytes else {
            throw BenchError("attach received \(received.load(ordering: .relaxed)) of \(bytes) bytes")
        }
        return Double(bytes) / (now() - began)
    }
}
