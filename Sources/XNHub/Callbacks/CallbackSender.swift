import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import XNProtocol
import XNStore

/// POSTs a finished job, in http-runner's shape, to its callback URL.
///
/// A failing callback never touches the job's own outcome: it is retried with backoff. Every try
/// is recorded with the job (`callback_delivery`), so a hub that restarts resumes a delivery
/// where it was. Each try resolves the host once, checks the address against `CallbackPolicy`
/// and connects to that address, so what was checked is what is called.
final class CallbackSender: Sendable {
    let configuration: HubConfiguration
    let store: any JobStore
    let metrics: HubMetrics
    let logger: Logger
    private let clientConfiguration: HTTPClient.Configuration
    /// Jobs whose delivery runs now: a job queued twice (an end and the resumption after a
    /// restart) is delivered once.
    private let inFlight = Mutex(Set<JobID>())

    init(configuration: HubConfiguration, store: any JobStore, metrics: HubMetrics, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.metrics = metrics
        self.logger = logger
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        // Each attempt is one connection try; the backoff between attempts is ours.
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        clientConfiguration.timeout = .init(
            connect: .seconds(5), read: .seconds(configuration.callbackTimeout.components.seconds))
        self.clientConfiguration = clientConfiguration
    }

    /// How one try went.
    enum TryResult {
        case delivered(Int)
        /// Worth another try.
        case failed(String)
        /// No try can change it: the policy refuses every address of the host.
        case refused(String)
    }

    func deliver(_ queued: JobRecord) async {
        guard queued.spec.callback != nil, inFlight.withLock({ $0.insert(queued.id).inserted }) else { return }
        defer { _ = inFlight.withLock { $0.remove(queued.id) } }
        // What the store says now: a delivery another queue entry finished is not repeated.
        let current: JobRecord
        do {
            guard let job = try await store.job(queued.id) else { return }
            current = job
        } catch {
            logger.error("cannot read job \(queued.id) to deliver its callback: \(error)")
            return
        }
        guard let url = current.spec.callback, var delivery = current.callbackDelivery, delivery.state == .pending
        else { return }
        let body: [UInt8]
        do {
            let (stdout, stderr) = try await store.fullOutput(of: current, limit: CompatJob.inlineOutputBytes)
            body = CompatJob(current, stdout: stdout, stderr: stderr).json()
        } catch {
            delivery.state = .failed
            delivery.lastResult = "cannot read the job: \(error)"
            await record(current.id, delivery, status: "failed: cannot read the job: \(error)")
            metrics.callbackFinished(.failed)
            return
        }
        let most = max(1, configuration.callbackAttempts)
        while delivery.attempts < most {
            if let due = delivery.nextAttemptAt {
                let wait = due - Timestamp.now()
                if wait > 0 { guard (try? await Task.sleep(for: .milliseconds(wait))) != nil else { return } }
            }
            delivery.attempts += 1
            let result = await attempt(url, body)
            delivery.lastAttemptAt = Timestamp.now()
            delivery.nextAttemptAt = nil
            switch result {
            case .delivered(let code):
                delivery.state = .delivered
                delivery.lastResult = "HTTP \(code)"
                await record(current.id, delivery, status: "delivered: HTTP \(code) on attempt \(delivery.attempts)")
                metrics.callbackFinished(.delivered)
                return
            case .refused(let reason):
                delivery.state = .failed
                delivery.lastResult = reason
                logger.warning("callback of job \(current.id) refused: \(reason)")
                await record(current.id, delivery, status: "failed: \(reason)")
                metrics.callbackFinished(.failed)
                return
            case .failed(let problem):
                delivery.lastResult = problem
                logger.info("callback for job \(current.id) attempt \(delivery.attempts) failed: \(problem)")
                if delivery.attempts < most {
                    let pause = configuration.callbackBackoff * (1 << (delivery.attempts - 1))
                    delivery.nextAttemptAt = delivery.lastAttemptAt! + Int64(pause / .milliseconds(1))
                    await record(current.id, delivery, status: nil)
                }
            }
        }
        delivery.state = .failed
        await record(
            current.id, delivery,
            status: "failed after \(delivery.attempts) attempt(s): \(delivery.lastResult ?? "unknown")")
        metrics.callbackFinished(.failed)
    }

    /// One POST: resolve, check, connect to the checked address.
    private func attempt(_ url: String, _ body: [UInt8]) async -> TryResult {
        let policy = configuration.callbackPolicy
        guard let host = URLComponents(string: url)?.host?.lowercased(), !host.isEmpty else {
            return .refused("callback is not a URL with a host")
        }
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let addresses: [[UInt8]]
        if let literal = CallbackPolicy.addressBytes(bare) {
            addresses = [literal]
        } else {
            do {
                addresses = try await Self.resolve(bare)
            } catch {
                return .failed("cannot resolve \(bare): \(error)")
            }
        }
        var refusals: [String] = []
        var chosen: [UInt8]?
        for address in addresses {
            if let refusal = policy.refusal(host: bare, address: address) {
                refusals.append(refusal)
            } else {
                chosen = address
                break
            }
        }
        guard let chosen else { return .refused(refusals.first ?? "\(bare) has no address") }
        var configuration = clientConfiguration
        if CallbackPolicy.addressBytes(bare) == nil {
            // Connect to the address just checked; TLS still verifies the certificate for the name.
            configuration.dnsOverride = [bare: CallbackPolicy.text(CallbackPolicy.unmapped(chosen))]
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let result = await post(url, body, with: client)
        try? await client.shutdown()
        return result
    }

    private func post(_ url: String, _ body: [UInt8], with client: HTTPClient) async -> TryResult {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        let timestamp = String(Timestamp.now())
        request.headers.add(name: "X-Notify-Timestamp", value: timestamp)
        if let secret = configuration.callbackSecret {
            request.headers.add(name: "X-Xn-Signature", value: Self.signature(timestamp, body, secret: secret))
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(
                request, timeout: .seconds(configuration.callbackTimeout.components.seconds))
            _ = try? await response.body.collect(upTo: 64 << 10)
            if (200..<300).contains(response.status.code) { return .delivered(Int(response.status.code)) }
            return .failed("HTTP \(response.status.code)")
        } catch {
            return .failed(describe(error))
        }
    }

    /// The host's addresses, IPv4 and IPv6, from the system resolver (on NIO's thread pool, as
    /// getaddrinfo blocks).
    static func resolve(_ host: String) async throws -> [[UInt8]] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host, nil, &hints, &list)
            guard rc == 0 else { throw ResolveError(message: String(cString: gai_strerror(rc))) }
            defer { freeaddrinfo(list) }
            var addresses: [[UInt8]] = []
            var next = list
            while let info = next {
                if info.pointee.ai_family == AF_INET, let raw = info.pointee.ai_addr {
                    let address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    addresses.append(withUnsafeBytes(of: address) { Array($0) })
                } else if info.pointee.ai_family == AF_INET6, let raw = info.pointee.ai_addr {
                    let address = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    addresses.append(withUnsafeBytes(of: address) { Array($0) })
                }
                next = info.pointee.ai_next
            }
            return addresses
        }
    }

    struct ResolveError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// `sha256=` and the hex HMAC-SHA256 of "TIMESTAMP.BODY": the receiver recomputes it with the
    /// shared secret and rejects a body or timestamp that was changed (or replayed too late).
    static func signature(_ timestamp: String, _ body: [UInt8], secret: [UInt8]) -> String {
        var message = Array(timestamp.utf8)
        message.append(UInt8(ascii: "."))
        message += body
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret))
        return "sha256=" + code.map { String(format: "%02x", $0) }.joined()
    }

    private func record(_ id: JobID, _ delivery: CallbackDelivery, status: String?) async {
        do {
            try await store.recordCallback(id, delivery, status: status)
        } catch {
            logger.error("cannot record callback delivery of job \(id): \(error)")
        }
    }

    private func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("connectTimeout") { return "connect timeout" }
        if text.contains("deadlineExceeded") || text.contains("readTimeout") { return "timed out" }
        return text
    }
}
