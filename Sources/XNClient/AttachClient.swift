import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket
import Synchronization
public import XNProtocol

/// What an attach session reports as it goes.
public enum AttachEvent: Sendable {
    case output(OutputStreamKind, [UInt8])
    /// The hub refused something the client sent (input to a closed stdin, a read-only attach).
    case problem(String)
    /// The connection dropped; the client is reconnecting and will resume where it was.
    case reconnecting(String)
}

/// How an attach session ended.
public enum AttachEnd: Sendable {
    case exited(JobView)
    case detached
}

/// A client of `/v1/jobs/ID/attach` that survives network blips: it keeps the offset of every
/// byte it received and reconnects from there, so nothing is lost or shown twice. Input sent
/// while it reconnects is delivered once it is back.
public final class AttachClient: Sendable {
    public enum Control: Sendable {
        case input([UInt8])
        case resize(rows: Int, cols: Int)
        case signal(String)
        case closeInput
        case terminate
        case detach
    }

    let url: String
    let readOnly: Bool
    let job: String
    /// The same hub over HTTP: asked why, when an upgrade is refused.
    let hub: HubClient
    private let controls = ControlQueue()
    /// Consecutive failed connections before the client gives up.
    public static let maxReconnects = 20

    /// `hub` as given to the CLI (`http://H:P`, `https://…`); the attach URL is derived from it.
    public convenience init(hub: String, job: String, readOnly: Bool = false, token: String? = nil) {
        self.init(hub: HubClient(baseURL: hub, token: token), job: job, readOnly: readOnly)
    }

    /// Attaches through `hub`'s address, token and trusted CA.
    public init(hub: HubClient, job: String, readOnly: Bool = false) {
        self.hub = hub
        self.job = job
        var base = hub.baseURL
        if base.hasPrefix("https://") {
            base = "wss://" + base.dropFirst("https://".count)
        } else if base.hasPrefix("http://") {
            base = "ws://" + base.dropFirst("http://".count)
        }
        url = base + "/v1/jobs/\(job.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? job)/attach"
        self.readOnly = readOnly
    }

    /// Queues a control for the job; sent in order, on the current or the next connection.
    public func send(_ control: Control) {
        controls.push(control)
    }

    /// Attaches until the job ends or the client detaches, reconnecting after drops.
    public func run(onEvent: @escaping @Sendable (AttachEvent) -> Void) async throws(ClientError) -> AttachEnd {
        let offsets = OffsetBox()
        var failures = 0
        let logger = Logger(label: "xn.attach") { _ in SwiftLogNoOpLogHandler() }
        let tls = try HubTLS.configuration(caFile: hub.caFile)
        while true {
            let outcome = Outcome()
            var query = "stdout=\(offsets.stdout)&stderr=\(offsets.stderr)"
            if readOnly { query += "&mode=read-only" }
            let began = ContinuousClock.now
            do {
                let controls = self.controls
                var headers = HTTPFields()
                if let token = hub.token { headers[.authorization] = "Bearer \(token)" }
                _ = try await WebSocketClient.connect(
                    url: url + "?" + query,
                    configuration: .init(
                        maxFrameSize: 4 << 20, additionalHeaders: headers, sniHostname: HubTLS.serverName(for: url)),
                    tlsConfiguration: tls, eventLoopGroup: HubHTTP.eventLoops, logger: logger
                ) { inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        // Controls are written from the connection's event loop: a key typed
                        // wakes that one thread, not one of Swift's pool that then wakes it.
                        // `onEvent` runs on another thread, so a terminal slow to take output
                        // never holds a key back.
                        group.addTask(executorPreference: HubHTTP.loopExecutor) {
                            while let control = await controls.next() {
                                try await Self.write(control, to: outbound)
                                if case .detach = control {
                                    outcome.set(.detached)
                                    return
                                }
                            }
                        }
                        for try await message in inbound.messages(maxSize: 4 << 20) {
                            if let end = Self.take(message, offsets: offsets, onEvent: onEvent) {
                                outcome.set(.exited(end))
                                break
                            }
                            if outcome.get() != nil { break }
                        }
                        group.cancelAll()
                    }
                }
            } catch {
                if let end = outcome.get() { return end }
                // A refusal (401, 403) will not change by retrying.
                if let refusal = await hub.attachRefusal(job: job, readOnly: readOnly),
                    refusal.status == 401 || refusal.status == 403
                {
                    throw refusal
                }
                if ContinuousClock.now - began > .seconds(5) { failures = 0 }
                failures += 1
                guard failures <= Self.maxReconnects else {
                    throw ClientError("lost the connection to the hub: \(HubClient.reason(error))", unreachable: true)
                }
                onEvent(.reconnecting(HubClient.reason(error)))
                try? await Task.sleep(for: .milliseconds(min(2000, 100 * (1 << min(failures, 5)))))
                continue
            }
            if let end = outcome.get() { return end }
            // Closed without an exit notice (a hub restart, a proxy): reconnect and resume.
            failures += 1
            guard failures <= Self.maxReconnects else {
                throw ClientError("the hub keeps closing the attach", unreachable: true)
            }
            onEvent(.reconnecting("connection closed"))
            try? await Task.sleep(for: .milliseconds(min(2000, 100 * (1 << min(failures, 5)))))
        }
    }

    /// Handles one message from the hub; returns the job once its exit notice arrives.
    private static func take(
        _ message: WebSocketMessage, offsets: OffsetBox, onEvent: @Sendable (AttachEvent) -> Void
    ) -> JobView? {
        switch message {
        case .binary(var buffer):
            guard let stream = buffer.readInteger(as: UInt8.self), let offset = buffer.readInteger(as: UInt64.self),
                let kind = OutputStreamKind(rawValue: stream)
            else { return nil }
            // Skip what was already shown (a resume may overlap); a gap cannot happen.
            let have = offsets.get(kind)
            let start = Int(offset)
            let end = start + buffer.readableBytes
            guard end > have, start <= have else { return nil }
            let bytes = Array(buffer.readableBytesView.dropFirst(have - start))
            offsets.set(kind, end)
            onEvent(.output(kind, bytes))
            return nil
        case .text(let text):
            switch try? JSONDecoder().decode(AttachNotice.self, from: Data(text.utf8)) {
            case .exit(let view)?: return view
            case .error(let message)?: onEvent(.problem(message))
            case nil: break
            }
            return nil
        }
    }

    private static func write(_ control: Control, to outbound: WebSocketOutboundWriter) async throws {
        let request: AttachRequest
        switch control {
        case .input(let bytes):
            try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
            return
        case .resize(let rows, let cols): request = .resize(JobTerminal(rows: rows, cols: cols))
        case .signal(let name): request = .signal(name)
        case .closeInput: request = .closeStdin
        case .terminate: request = .terminate
        case .detach: request = .detach
        }
        try await outbound.write(.text(request.text))
    }
}

/// The offsets received so far, shared by the reader and the reconnect loop.
final class OffsetBox: Sendable {
    private let values = Mutex<(stdout: Int, stderr: Int)>((0, 0))
    var stdout: Int { values.withLock { $0.stdout } }
    var stderr: Int { values.withLock { $0.stderr } }
    func get(_ kind: OutputStreamKind) -> Int { values.withLock { kind == .stdout ? $0.stdout : $0.stderr } }
    func set(_ kind: OutputStreamKind, _ value: Int) {
        values.withLock { if kind == .stdout { $0.stdout = value } else { $0.stderr = value } }
    }
}

/// How one connection ended, when it ended on purpose.
final class Outcome: Sendable {
    private let end = Mutex<AttachEnd?>(nil)
    func set(_ value: AttachEnd) { end.withLock { if $0 == nil { $0 = value } } }
    func get() -> AttachEnd? { end.withLock { $0 } }
}

/// Controls waiting to be sent. Unlike an AsyncStream, a reader cancelled while it waits (its
/// connection dropped) leaves the queue usable for the next connection.
final class ControlQueue: Sendable {
    private struct State {
        var items: [AttachClient.Control] = []
        var waiter: CheckedContinuation<AttachClient.Control?, Never>?
    }

    private let state = Mutex(State())

    func push(_ control: AttachClient.Control) {
        let waiter = state.withLock { state -> CheckedContinuation<AttachClient.Control?, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.items.append(control)
            return nil
        }
        waiter?.resume(returning: control)
    }

    /// The next control, or nil when the calling task is cancelled.
    func next() async -> AttachClient.Control? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> AttachClient.Control?? in
                    if !state.items.isEmpty { return .some(state.items.removeFirst()) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}
