import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization
import XNProtocol
import XNStore

/// One worker's WebSocket: hello, then control messages and output frames until it closes or
/// goes silent past the heartbeat timeout.
///
/// - Important: Frames are handled one at a time and output is stored before the next frame is
///   read, so a fast worker is slowed by TCP backpressure instead of filling the hub's memory.
struct WorkerSession: Sendable {
    let scheduler: Scheduler
    let store: any JobStore
    let configuration: HubConfiguration
    let logger: Logger

    static let helloTimeout: Duration = .seconds(10)

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, offered: String?) async {
        let offeredProtocols = (offered ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard offeredProtocols.contains(WireProtocol.subprotocol) else {
            var refused = WireMessage(.refused)
            refused.reason =
                "protocol mismatch: this hub speaks \(WireProtocol.subprotocol), the worker offered \(offered ?? "none")"
            try? await outbound.write(.text(Self.encode(refused)))
            try? await outbound.close(.policyViolation, reason: "protocol mismatch")
            return
        }
        let state = SessionState()
        let (outboxStream, outbox) = AsyncStream.makeStream(of: WireMessage.self)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in outboxStream {
                    do {
                        try await outbound.write(.text(Self.encode(message)))
                    } catch {
                        break
                    }
                }
            }
            group.addTask { await watch(state, outbound: outbound) }
            await read(inbound, outbound: outbound, outbox: outbox, state: state)
            outbox.finish()
            group.cancelAll()
        }
        if let session = state.session.withLock({ $0 }) {
            let expired = state.expired.withLock { $0 }
            await scheduler.disconnected(
                session,
                reason: expired ? "no heartbeat within \(configuration.heartbeatTimeout)" : "connection closed",
                expired: expired)
        }
    }

    /// Closes the socket when no hello comes in time, or nothing at all within the heartbeat timeout.
    private func watch(_ state: SessionState, outbound: WebSocketOutboundWriter) async {
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: .milliseconds(100))) != nil else { return }
            let silent = ContinuousClock.now - state.lastSeen.withLock { $0 }
            let hello = state.session.withLock { $0 } != nil
            if !hello && silent > Self.helloTimeout {
                try? await outbound.close(.policyViolation, reason: "no hello")
                return
            }
            if hello && silent > configuration.heartbeatTimeout {
                state.expired.withLock { $0 = true }
                // Declare it gone now: the closing handshake with a dead peer can take long.
                if let session = state.session.withLock({ $0 }) {
                    await scheduler.disconnected(
                        session, reason: "no heartbeat within \(configuration.heartbeatTimeout)", expired: true)
                }
                try? await outbound.close(.goingAway, reason: "no heartbeat")
                return
            }
        }
    }

    private func read(
        _ inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
        outbox: AsyncStream<WireMessage>.Continuation, state: SessionState
    ) async {
        do {
            for try await message in inbound.messages(maxSize: WireProtocol.maxFrameBytes) {
                state.lastSeen.withLock { $0 = ContinuousClock.now }
                let problem: String?
                switch message {
                case .text(let text):
                    problem = await handle(text, outbox: outbox, state: state)
                case .binary(let buffer):
                    problem = await handleOutput(buffer, outbox: outbox, state: state)
                }
                // Silence is time spent waiting for the worker, not time the hub took to store.
                state.lastSeen.withLock { $0 = ContinuousClock.now }
                if let problem {
                    logger.warning("closing worker connection: \(problem)")
                    var refused = WireMessage(.refused)
                    refused.reason = problem
                    try? await outbound.write(.text(Self.encode(refused)))
                    try? await outbound.close(.protocolError, reason: String(problem.prefix(100)))
                    return
                }
            }
        } catch {
            logger.debug("worker connection ended: \(error)")
        }
    }

    /// Handles a control message; returns a problem that ends the connection.
    private func handle(
        _ text: String, outbox: AsyncStream<WireMessage>.Continuation, state: SessionState
    ) async -> String? {
        guard let message = try? JSONDecoder().decode(WireMessage.self, from: Data(text.utf8)) else {
            return "malformed message"
        }
        guard let session = state.session.withLock({ $0 }) else {
            guard message.type == .hello else { return "expected hello first" }
            switch await scheduler.connect(message, outbox: outbox) {
            case .refused(let reason):
                return reason
            case .welcome(let session):
                state.session.withLock { $0 = session }
                await scheduler.dispatch()
                return nil
            }
        }
        switch message.type {
        case .heartbeat:
            await scheduler.seen(session)
        case .draining:
            await scheduler.draining(session)
        case .started:
            guard let token = message.attempt.flatMap(AttemptToken.parse) else { return "started without an attempt" }
            if !(await scheduler.started(token, session: session)) {
                outbox.yield(Scheduler.kill(AttemptToken.format(token), "the hub no longer runs this attempt"))
            }
        case .ended:
            guard let token = message.attempt.flatMap(AttemptToken.parse), let end = message.end else {
                return "ended without an attempt or an end"
            }
            return await scheduler.remoteEnded(token, end, session: session)
        default:
            return "unexpected message \(message.type.rawValue)"
        }
        return nil
    }

    /// Stores one output frame at its offset (skipping what is already stored) and acknowledges it.
    private func handleOutput(
        _ buffer: ByteBuffer, outbox: AsyncStream<WireMessage>.Continuation, state: SessionState
    ) async
        -> String?
    {
        guard let session = state.session.withLock({ $0 }) else { return "expected hello first" }
        guard let frame = OutputFrame.parseHeader(buffer.readableBytesView) else { return "malformed output frame" }
        let count = buffer.readableBytes - OutputFrame.headerSize
        let stream: OutputStreamName = frame.stream == 1 ? .stdout : .stderr
        switch await scheduler.outputTarget(frame.attempt, stream: stream, session: session) {
        case .stale:
            outbox.yield(Scheduler.kill(AttemptToken.format(frame.attempt), "the hub no longer runs this attempt"))
            return nil
        case .store(let job, let stored, let cap):
            let offset = Int(frame.offset)
            guard offset <= stored else { return "output gap: got offset \(offset), expected \(stored)" }
            let end = offset + count
            let keepUpTo = min(end, cap)
            if keepUpTo > stored {
                let kept = buffer.withUnsafeReadableBytes { raw in
                    Data(raw[(OutputFrame.headerSize + stored - offset)..<(OutputFrame.headerSize + keepUpTo - offset)])
                }
                do {
                    scheduler.activity.output(job, stream, offset: stored, bytes: [UInt8](kept))
                    try await store.appendOutput(job, stream: stream, offset: stored, data: kept)
                    scheduler.activity.stored(job, stream, upTo: keepUpTo)
                } catch {
                    logger.error("cannot store output of job \(job): \(error)")
                    return "the hub cannot store output"
                }
            }
            await scheduler.outputStored(frame.attempt, stream: stream, upTo: end)
            return nil
        }
    }

    static func encode(_ message: WireMessage) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(message), as: UTF8.self)) ?? #"{"type":"refused"}"#
    }
}

/// What a session's tasks share.
final class SessionState: Sendable {
    let session = Mutex<UInt64?>(nil)
    let lastSeen = Mutex(ContinuousClock.now)
    let expired = Mutex(false)
}
