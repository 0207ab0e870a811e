import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import XNProtocol
import XNStore

/// One client attached to a job (`/v1/jobs/ID/attach`): the output stored so far from the offsets
/// it asks for, then live output as it is stored, until the job ends; its input, resizes and
/// signals go to the job. The store is the one source of both replay and live output, so a client
/// that reconnects with the offsets it has gets every byte once.
///
///     server → client  binary  [stream: 1 stdout, 2 stderr][offset: u64 big-endian][bytes]
///                      text    {"type":"exit","job":{…}} (then close) | {"type":"error","message":…}
///     client → server  binary  bytes for the job's stdin (or terminal)
///                      text    {"type":"resize","rows":R,"cols":C} | {"type":"signal","signal":"INT"} |
///                              {"type":"close_stdin"} | {"type":"terminate"} | {"type":"detach"}
struct AttachSession: Sendable {
    let scheduler: Scheduler
    let store: any JobStore
    let transcripts: any TranscriptStore
    let logger: Logger

    /// Who attached, for the transcript of a session that may type.
    struct Client: Sendable {
        let token: String?
        let peer: String
    }

    /// Output bytes per frame sent to the client.
    static let pieceBytes = 256 << 10

    func run(
        _ id: JobID, from offsets: [OutputStreamKind: Int], readOnly: Bool, client: Client,
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter
    ) async {
        let wakes = scheduler.activity.subscribe(id)
        let found: Result<JobRecord?, any Error>
        do {
            found = .success(try await store.job(id))
        } catch {
            logger.error("attach to \(id): cannot read the job: \(error)")
            found = .failure(error)
        }
        guard case .success(let job?) = found else {
            var message = "no job \(id.rawValue)"
            if case .failure(let error) = found { message = "cannot read job \(id.rawValue): \(error)" }
            try? await outbound.write(.text(AttachNotice.error(message).text))
            await Self.linger(inbound)
            return
        }
        scheduler.metrics.attachOpened(true)
        defer { scheduler.metrics.attachOpened(false) }
        // Every session that may type is recorded, for the audit trail.
        let recorder =
            readOnly
            ? nil
            : await TranscriptRecorder.start(
                job: job, token: client.token, peer: client.peer, store: transcripts, logger: logger)
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await send(id, from: offsets, wakes: wakes, outbound: outbound, recorder: recorder)
                return true
            }
            group.addTask {
                await receive(id, readOnly: readOnly, inbound: inbound, outbound: outbound, recorder: recorder)
                return false
            }
            // The client left: stop sending. The job ended and the exit notice is out: let the
            // client close first (see `linger`), then stop listening to it.
            if await group.next() == true {
                group.addTask {
                    try? await Task.sleep(for: Self.lingerTime)
                    return false
                }
                _ = await group.next()
            }
            group.cancelAll()
        }
        await recorder?.finish()
    }

    /// How long the hub waits for a client to close after its last message.
    static let lingerTime: Duration = .seconds(10)

    /// Waits until the client closes (or `lingerTime` passes). A server that closes right after its
    /// first frames can leave hummingbird-websocket's client hanging mid-upgrade, waiting for a
    /// message that never comes; the client closing first never does.
    static func linger(_ inbound: WebSocketInboundStream) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var messages = inbound.messages(maxSize: WireProtocol.maxFrameBytes).makeAsyncIterator()
                while (try? await messages.next()) != nil {}
            }
            group.addTask { try? await Task.sleep(for: lingerTime) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Sends stored output past `offsets`, then what is stored next as it is stored, and the exit
    /// notice at the end. Bytes that continue exactly where the client is go out from the event;
    /// anything else (a gap, the end) is read from the store.
    private func send(
        _ id: JobID, from offsets: [OutputStreamKind: Int], wakes: AsyncStream<JobActivity.Event>,
        outbound: WebSocketOutboundWriter, recorder: TranscriptRecorder?
    ) async {
        var sent = offsets
        var wakeups = wakes.makeAsyncIterator()
        do {
            while !Task.isCancelled {
                // The job first: once it has ended, its byte counts are final.
                guard let job = try await store.job(id) else { return }
                for stream in [OutputStreamKind.stdout, .stderr] {
                    let total = stream == .stdout ? job.stdoutBytes : job.stderrBytes
                    while sent[stream, default: 0] < total {
                        let offset = sent[stream, default: 0]
                        let bytes = try await store.output(id, stream: stream, from: offset, limit: Self.pieceBytes)
                        if bytes.isEmpty { break }
                        try await outbound.write(.binary(Self.frame(stream, offset: offset, bytes[...])))
                        await recorder?.output(bytes[...])
                        sent[stream] = offset + bytes.count
                    }
                }
                if job.state.isTerminal {
                    try await outbound.write(.text(AttachNotice.exit(JobView(job)).text))
                    return
                }
                // Live: send what continues the client's stream until something needs the store.
                live: while true {
                    guard let event = await wakeups.next() else { return }
                    switch event {
                    case .output(let stream, let offset, let bytes):
                        // Sent before it is stored: the client is never behind the store for it.
                        if offset == sent[stream, default: 0] {
                            try await outbound.write(.binary(Self.frame(stream, offset: offset, bytes[...])))
                            await recorder?.output(bytes[...])
                            sent[stream] = offset + bytes.count
                        }
                    case .stored(let stream, let upTo):
                        if upTo > sent[stream, default: 0] { break live }  // missed some: read the store
                    case .changed:
                        break live
                    }
                }
            }
        } catch {
            logger.debug("attach to \(id) ended: \(error)")
        }
    }

    /// Passes the client's input and controls to the job until the client leaves or detaches.
    private func receive(
        _ id: JobID, readOnly: Bool, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
        recorder: TranscriptRecorder?
    ) async {
        do {
            for try await message in inbound.messages(maxSize: WireProtocol.maxFrameBytes) {
                var problem: String?
                switch message {
                case .binary(let buffer):
                    let bytes = Array(buffer.readableBytesView)
                    problem = readOnly ? "this attach is read-only" : await scheduler.input(id, .bytes(bytes))
                    if problem == nil { await recorder?.input(bytes) }
                case .text(let text):
                    switch AttachRequest.parse(text) {
                    case .failure(let error):
                        problem = error.message
                    case .success(.detach):
                        return
                    case .success where readOnly:
                        problem = "this attach is read-only"
                    case .success(let request):
                        problem = await control(id, request)
                        if problem == nil, let recorder {
                            if case .resize(let size) = request {
                                await recorder.resize(rows: size.rows, cols: size.cols)
                            } else {
                                await recorder.marker(request.name)
                            }
                        }
                    }
                }
                if let problem {
                    try await outbound.write(.text(AttachNotice.error(problem).text))
                }
            }
        } catch {
            logger.debug("attach to \(id): \(error)")
        }
        // The client is gone; the sender keeps nothing to do.
    }

    private func control(_ id: JobID, _ request: AttachRequest) async -> String? {
        switch request {
        case .resize(let size):
            return await scheduler.input(id, .resize(size))
        case .closeStdin:
            return await scheduler.input(id, .close)
        case .signal(let text):
            guard let number = SignalName.parse(text) else { return "unknown signal '\(text)'" }
            do {
                switch try await scheduler.signal(id, number) {
                case .sent: return nil
                case .notRunning(let why): return "the job is not running: \(why)"
                case .notFound: return "no job \(id.rawValue)"
                }
            } catch {
                return "cannot signal the job: \(error)"
            }
        case .terminate:
            do {
                _ = try await scheduler.cancel(id)
                return nil
            } catch {
                return "cannot cancel the job: \(error)"
            }
        case .detach:
            return nil
        }
    }

    static func frame(_ stream: OutputStreamKind, offset: Int, _ bytes: ArraySlice<UInt8>) -> ByteBuffer {
        var frame = ByteBuffer()
        frame.reserveCapacity(9 + bytes.count)
        frame.writeInteger(stream.rawValue)
        frame.writeInteger(UInt64(offset))
        frame.writeBytes(bytes)
        return frame
    }
}
