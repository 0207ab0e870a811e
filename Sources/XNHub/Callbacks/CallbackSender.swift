import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import XNProtocol
import XNStore

/// POSTs a finished job, in http-runner's shape, to its callback URL.
///
/// A failing callback never touches the job's own outcome: it is retried with backoff and the
/// delivery result is recorded in `callback_status`.
struct CallbackSender: Sendable {
    let configuration: HubConfiguration
    let store: any JobStore
    let metrics: HubMetrics
    let logger: Logger
    let client: HTTPClient

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
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    }

    func deliver(_ job: JobRecord) async {
        guard let url = job.spec.callback else { return }
        let body: [UInt8]
        do {
            let (stdout, stderr) = try await store.fullOutput(of: job)
            body = CompatJob(job, stdout: stdout, stderr: stderr).json()
        } catch {
            await setStatus(job.id, "failed: cannot read the job: \(error)")
            metrics.callbackFinished(.failed)
            return
        }
        var pause = configuration.callbackBackoff
        var lastProblem = ""
        for attempt in 1...max(1, configuration.callbackAttempts) {
            if attempt > 1 {
                guard (try? await Task.sleep(for: pause)) != nil else { break }
                pause *= 2
            }
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
                if (200..<300).contains(response.status.code) {
                    await setStatus(job.id, "delivered: HTTP \(response.status.code) on attempt \(attempt)")
                    metrics.callbackFinished(.delivered)
                    return
                }
                lastProblem = "HTTP \(response.status.code)"
            } catch {
                lastProblem = describe(error)
            }
            logger.info("callback for job \(job.id) attempt \(attempt) failed: \(lastProblem)")
        }
        await setStatus(job.id, "failed after \(configuration.callbackAttempts) attempt(s): \(lastProblem)")
        metrics.callbackFinished(.failed)
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

    func shutdown() async {
        try? await client.shutdown()
    }

    private func setStatus(_ id: JobID, _ status: String) async {
        do {
            try await store.setCallbackStatus(id, status)
        } catch {
            logger.error("cannot record callback status of job \(id): \(error)")
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
