import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOWebSocket
import XNClient
import XNProtocol

extension Worker {
    /// Connects to the hub and reconnects with backoff until the worker stops.
    func stayConnected() async {
        var pause = configuration.reconnectMin
        let tls: TLSConfiguration?
        do {
            tls = try HubTLS.configuration(caFile: configuration.caFile)
        } catch {
            logger.error("\(error.message)")
            return
        }
        while !(await link.isStopped) && !Task.isCancelled {
            let began = ContinuousClock.now
            do {
                var headers = [("Sec-WebSocket-Protocol", WireProtocol.subprotocol)]
                if let token = configuration.token { headers.append(("Authorization", "Bearer \(token)")) }
                try await HubWebSocket.connect(
                    to: configuration.endpoint, headers: headers, tls: tls,
                    serverName: HubTLS.serverName(for: configuration.endpoint), maxFrameSize: WireProtocol.maxFrameBytes
                ) { inbound, outbound in
                    await self.session(inbound: &inbound, outbound: outbound)
                }
            } catch {
                if error is HubWebSocket.UpgradeRefused {
                    logger.error("the hub at \(configuration.hub) refused this worker (a missing or wrong --token?)")
                } else if let problem = HubTLS.problem(error) {
                    logger.error("cannot connect to the hub at \(configuration.hub): \(problem)")
                } else {
                    logger.info("cannot reach hub at \(configuration.hub): \(error)")
                }
            }
            if await link.isStopped { return }
            // A connection that lasted a while was fine: start the backoff over.
            if ContinuousClock.now - began > .seconds(5) { pause = configuration.reconnectMin }
            guard (try? await Task.sleep(for: pause)) != nil else { return }
            pause = min(pause * 2, configuration.reconnectMax)
        }
    }

    /// One connection: hello, then a writer, a heartbeat and the reader until it closes.
    private func session(inbound messages: inout HubWebSocket.Inbound, outbound: HubWebSocket.Outbound) async {
        do {
            try await outbound.text(Self.encode(.hello(await link.hello())))
        } catch {
            return
        }
        guard case .text(let text)? = try? await messages.next(),
            let first = try? JSONDecoder().decode(HubMessage.self, from: Data(text.utf8))
        else { return }
        guard case .welcome(let welcome) = first else {
            let reason = if case .refused(let reason) = first { reason } else { "the hub refused the worker" }
            logger.error("hub refused this worker: \(reason)")
            if reason.contains("protocol mismatch") || reason.contains("reserved for the hub")
                || reason.hasPrefix(WireProtocol.grantRefusalPrefix)
            {
                await refusedForGood(reason)
            }
            return
        }
        logger.info("connected to hub \(configuration.hub)")
        let interval = Duration.milliseconds(Int64(welcome.heartbeat * 1000))
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = await link.connected(wake, executor: outbound.executor)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.write(on: id, wakes: wakes, outbound: outbound) }
            group.addTask {
                while (try? await Task.sleep(for: interval)) != nil {
                    await self.link.heartbeat()
                }
            }
            do {
                while let message = try await messages.next() {
                    switch message {
                    case .text(let text):
                        guard let decoded = try? JSONDecoder().decode(HubMessage.self, from: Data(text.utf8)) else {
                            continue
                        }
                        if case .refused(let reason) = decoded { logger.error("the hub closed this link: \(reason)") }
                        await handle(decoded)
                    case .binary(let buffer):
                        guard let (token, bytes) = InputFrame.decode(buffer.readableBytesView) else { continue }
                        await handle(.input(token, bytes))
                    }
                }
            } catch {
                logger.info("connection to hub lost: \(error)")
            }
            await link.disconnected(id)
            group.cancelAll()
        }
    }

    /// Sends what `nextToSend` hands out whenever something new is there.
    private func write(on id: UInt64, wakes: AsyncStream<Void>, outbound: HubWebSocket.Outbound) async {
        for await _ in wakes {
            while let next = await link.nextToSend(on: id) {
                do {
                    switch next {
                    case .control(let message):
                        try await outbound.text(Self.encode(message))
                    case .memory(let token, let stream, let offset, let slices):
                        let count = slices.reduce(0) { $0 + $1.count }
                        var frame = ByteBufferAllocator().buffer(capacity: OutputFrame.headerSize + count)
                        frame.writeBytes(OutputFrame.header(stream: stream, attempt: token, offset: offset))
                        for slice in slices { frame.writeBytes(slice) }
                        try await outbound.binary(frame)
                    case .output(let token, let stream, let offset, let count, let file):
                        let header = OutputFrame.header(stream: stream, attempt: token, offset: offset)
                        try await outbound.binary(try await file.read(after: header, at: offset, count: count))
                    }
                } catch {
                    try? await outbound.close(.goingAway)
                    return
                }
            }
        }
        try? await outbound.close(.normalClosure)
    }

    static func encode(_ message: WorkerMessage) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(message), as: UTF8.self)) ?? "{}"
    }
}
