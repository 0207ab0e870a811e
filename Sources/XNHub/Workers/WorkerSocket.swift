import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization
import XNProtocol

/// One remote worker's WebSocket: decodes what the worker sends (`WorkerMessage` as JSON text,
/// output as binary `OutputFrame`s) for the scheduler, writes what the scheduler sends, and ends
/// the link when the worker goes silent past the heartbeat timeout.
///
/// - Important: Frames are handled one at a time and output is stored before the next frame is
///   read, so a fast worker is slowed by TCP backpressure instead of filling the hub's memory.
struct WorkerSocket: Sendable {
    let scheduler: Scheduler
    let configuration: HubConfiguration
    let tokens: TokenRegistry
    let logger: Logger

    static let helloTimeout: Duration = .seconds(10)

    func run(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, offered: String?, grant: WorkerGrant
    ) async {
        let offeredProtocols = (offered ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard offeredProtocols.contains(WireProtocol.subprotocol) else {
            let reason =
                "protocol mismatch: this hub speaks \(WireProtocol.subprotocol), the worker offered \(offered ?? "none")"
            try? await outbound.write(.text(Self.encode(.refused(reason: reason))))
            // Closing right after the upgrade can leave the client waiting mid-upgrade for a message
            // that never comes (see `AttachSession.linger`): it closes first once it has the reason.
            await AttachSession.linger(inbound)
            try? await outbound.close(.policyViolation, reason: "protocol mismatch")
            return
        }
        let (outgoing, outbox) = AsyncStream.makeStream(of: SocketOutbox.Item.self)
        let session = await scheduler.openSession(SocketOutbox(items: outbox), grant: grant)
        let state = SocketState()
        await tokens.session(of: grant.token) {
            outbox.yield(.close("token '\(grant.token ?? "")' was revoked"))
        } _: {
            await withDiscardingTaskGroup { group in
                // The writer ends once the outbox does, after what is queued (a refusal) is out.
                group.addTask { await write(outgoing, to: outbound, state: state) }
                await withDiscardingTaskGroup { reading in
                    reading.addTask { await watch(state, session: session, outbound: outbound) }
                    await read(inbound, session: session, outbox: outbox, state: state)
                    reading.cancelAll()
                }
                outbox.finish()
            }
        }
        if !state.expired.withLock({ $0 }) {
            await scheduler.sessionClosed(session, expired: false)
        }
    }

    /// Writes the scheduler's messages in order; a close is sent as `refused` with its reason,
    /// input as a binary `InputFrame` to a worker that takes them.
    private func write(
        _ outgoing: AsyncStream<SocketOutbox.Item>, to outbound: WebSocketOutboundWriter, state: SocketState
    ) async {
        for await item in outgoing {
            do {
                switch item {
                case .message(.input(let token, let bytes)) where state.inputFrames.withLock({ $0 }):
                    try await outbound.write(
                        .binary(ByteBuffer(bytes: InputFrame.encode(attempt: token, bytes: bytes))))
                case .message(let message):
                    try await outbound.write(.text(Self.encode(message)))
                case .close(let reason):
                    try await outbound.write(.text(Self.encode(.refused(reason: reason))))
                    try await outbound.close(.policyViolation, reason: String(reason.prefix(100)))
                    return
                }
            } catch {
                return
            }
        }
    }

    /// Closes the socket when no hello comes in time, or nothing at all within the heartbeat timeout.
    private func watch(_ state: SocketState, session: SessionID, outbound: WebSocketOutboundWriter) async {
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: .milliseconds(100))) != nil else { return }
            let silent = ContinuousClock.now - state.lastSeen.withLock { $0 }
            let hello = state.greeted.withLock { $0 }
            if !hello && silent > Self.helloTimeout {
                try? await outbound.close(.policyViolation, reason: "no hello")
                return
            }
            if hello && silent > configuration.heartbeatTimeout {
                state.expired.withLock { $0 = true }
                // Declare it gone now: the closing handshake with a dead peer can take long.
                logger.warning("worker link silent for more than \(configuration.heartbeatTimeout); closing it")
                await scheduler.sessionClosed(session, expired: true)
                try? await outbound.close(.goingAway, reason: "no heartbeat")
                return
            }
        }
    }

    private func read(
        _ inbound: WebSocketInboundStream, session: SessionID, outbox: AsyncStream<SocketOutbox.Item>.Continuation,
        state: SocketState
    ) async {
        do {
            for try await frame in inbound.messages(maxSize: WireProtocol.maxFrameBytes) {
                state.lastSeen.withLock { $0 = ContinuousClock.now }
                let problem: String?
                switch frame {
                case .text(let text):
                    if let message = try? JSONDecoder().decode(WorkerMessage.self, from: Data(text.utf8)) {
                        if case .hello(let hello) = message {
                            state.greeted.withLock { $0 = true }
                            state.inputFrames.withLock { $0 = hello.inputFrames == true }
                        }
                        problem = await scheduler.receive(message, from: session)
                    } else {
                        problem = "malformed message: \(text.prefix(200))"
                    }
                case .binary(let buffer):
                    if let piece = OutputFrame.decode(buffer.readableBytesView) {
                        if piece.bytes.count > Self.inlineStoreBytes {
                            // Stored on Swift's pool, while the connection's event loop reads and
                            // unmasks the frames after it: a job writing fast fills both cores.
                            problem = await withTaskExecutorPreference(globalConcurrentExecutor) {
                                await scheduler.store(piece, from: session)
                            }
                        } else {
                            problem = await scheduler.store(piece, from: session)
                        }
                    } else {
                        problem = "malformed output frame"
                    }
                }
                // Silence is time spent waiting for the worker, not time the hub took to store.
                state.lastSeen.withLock { $0 = ContinuousClock.now }
                if let problem {
                    logger.warning("closing worker link: \(problem)")
                    outbox.yield(.close(problem))
                    return
                }
            }
        } catch {
            logger.debug("worker link ended: \(error)")
        }
    }

    /// Output pieces up to this size are stored on the connection's event loop, at once: a
    /// keystroke's echo should not wait for a thread to wake. Larger ones come from a job writing
    /// fast, and are stored on another thread so reading the next frames goes on meanwhile (a
    /// 1 GiB job through a worker: 234-373 MB/s stored on the loop, 380-440 MB/s off it).
    static let inlineStoreBytes = 32 << 10

    static func encode(_ message: HubMessage) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        guard let data = try? encoder.encode(message) else { return #"{"reason":"internal error","type":"refused"}"# }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Messages for a remote worker, written by its socket's writer task.
struct SocketOutbox: WorkerOutbox {
    enum Item: Sendable {
        case message(HubMessage)
        case close(String)
    }

    let items: AsyncStream<Item>.Continuation

    func send(_ message: HubMessage) {
        items.yield(.message(message))
    }

    func close(reason: String) {
        items.yield(.close(reason))
        items.finish()
    }
}

/// What a socket's tasks share.
final class SocketState: Sendable {
    let greeted = Mutex(false)
    let lastSeen = Mutex(ContinuousClock.now)
    let expired = Mutex(false)
    /// The worker's hello said it takes input as binary frames.
    let inputFrames = Mutex(false)
}
