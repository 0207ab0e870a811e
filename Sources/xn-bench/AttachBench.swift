import CXNSystem
import Foundation
import Synchronization
import XNClient

/// Keystroke echo and output rate through `/v1/jobs/ID/attach`, beside a local pty.
enum AttachBench {
    /// A program that echoes each byte at once: raw mode, no line discipline echo, then cat.
    static let echoCommand = ["sh", "-c", "stty raw -echo; echo ready; exec cat"]

    /// Byte → echo round trips on a local pty, as a terminal emulator has them: a thread writes a
    /// key to the pty's master and blocks reading until the echo comes back. The floor.
    static func localPTY(iterations: Int) async throws -> Sample {
        try await PlainHTTP.onThread { try blockingPTY(iterations: iterations) }
    }

    private static func blockingPTY(iterations: Int) throws -> Sample {
        var master: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        let failed = xn_open_terminal(24, 80, &master, &name, name.count)
        guard failed == 0 else { throw BenchError("no pty: \(String(cString: strerror(failed)))") }
        defer { close(master) }
        let slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard slave >= 0 else { throw BenchError("cannot open the pty: \(String(cString: strerror(errno)))") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", echoCommand[2]]
        let terminal = FileHandle(fileDescriptor: slave, closeOnDealloc: true)
        (process.standardInput, process.standardOutput, process.standardError) = (terminal, terminal, terminal)
        try process.run()
        try terminal.close()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        /// Reads what the pty has, waiting at most 10 s for it.
        func next() throws -> ArraySlice<UInt8> {
            var ready = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 10_000) == 1 else { throw BenchError("the echo program did not answer") }
            let count = read(master, &buffer, buffer.count)
            guard count > 0 else { throw BenchError("the echo program ended") }
            return buffer[0..<count]
        }
        var seen: [UInt8] = []
        while !String(decoding: seen, as: UTF8.self).contains("ready") { seen += try next() }
        var durations: [Double] = []
        let began = now()
        for index in 0..<iterations {
            var key = UInt8(ascii: "a") + UInt8(index % 26)
            let start = now()
            guard write(master, &key, 1) == 1 else { throw BenchError("cannot write to the pty") }
            while try !next().contains(key) {}
            durations.append(now() - start)
        }
        return Sample(durations: durations, wall: now() - began)
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

    /// Byte → echo round trips through the hub's attach endpoint (and its worker, if it has one),
    /// taken as `xn run -it` has them: keys sent from a thread of their own (its stdin reader),
    /// the echo timed where the client hands output over (where the CLI writes it to the terminal).
    static func throughHub(_ hub: BenchHub, iterations: Int) async throws -> Sample {
        let id = try await hub.submitJSON(
            #"{"command":"sh","args":["-c","stty raw -echo; echo ready; exec cat"],"tty":true}"#)
        let client = AttachClient(hub: hub.url, job: id)
        let echoes = EchoWatch()
        let session = Task {
            try await client.run { event in
                if case .output(_, let bytes) = event { echoes.saw(bytes) }
            }
        }
        let sample = try await PlainHTTP.onThread { try echoes.type(iterations, into: client) }
        client.send(.terminate)
        _ = try await session.value
        return sample
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

/// Keys typed from one thread and their echoes seen by the attach client, matched one at a time.
private final class EchoWatch: Sendable {
    private struct State {
        var seen: [UInt8] = []
        var ready = false
        var key: UInt8?
        var sentAt = 0.0
        var took = 0.0
    }

    private let state = Mutex(State())
    private let arrived = DispatchSemaphore(value: 0)

    /// Output as the client hands it over: the echo program's greeting, then each key's echo.
    func saw(_ bytes: [UInt8]) {
        let at = now()
        let signal = state.withLock { state -> Bool in
            if !state.ready {
                state.seen += bytes
                state.ready = String(decoding: state.seen, as: UTF8.self).contains("ready")
                return state.ready
            }
            guard let key = state.key, bytes.contains(key) else { return false }
            state.key = nil
            state.took = at - state.sentAt
            return true
        }
        if signal { arrived.signal() }
    }

    /// Waits for the greeting, then sends each key once the last one's echo was seen.
    func type(_ iterations: Int, into client: AttachClient) throws -> Sample {
        guard arrived.wait(timeout: .now() + 30) == .success else { throw BenchError("the echo program never started") }
        var durations: [Double] = []
        let began = now()
        for index in 0..<iterations {
            let key = UInt8(ascii: "a") + UInt8(index % 26)
            state.withLock {
                $0.key = key
                $0.sentAt = now()
            }
            client.send(.input([key]))
            guard arrived.wait(timeout: .now() + 10) == .success else { throw BenchError("no echo of a key") }
            durations.append(state.withLock { $0.took })
        }
        return Sample(durations: durations, wall: now() - began)
    }
}
