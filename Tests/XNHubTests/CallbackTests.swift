import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import Testing
import XNProtocol

/// Callback delivery: the finished job in http-runner's shape, and failures that never touch the job.
@Suite(.timeLimit(.minutes(2)))
struct CallbackTests {
    @Test func theFinishedJobIsPostedToTheCallback() async throws {
        try await withCallbackListener { listener in
            try await withHub { hub in
                let created = try await hub.post(
                    "/", #"{"command":"printf","args":["héllo ✓"],"callback":"\#(listener.url)/hook"}"#)
                #expect(created.status == 202)
                let id = try #require(try created.object()["id"] as? String)
                let delivery = try await eventually("callback") { await listener.deliveries.first }
                let before = Timestamp.now()
                #expect(delivery.path == "/hook")
                #expect(delivery.contentType == "application/json")
                // Content-Length counts bytes, not UTF-16 units (http-runner's bug).
                #expect(delivery.contentLength == delivery.body.count)
                let stamp = try #require(delivery.timestamp.flatMap { Int64($0) })
                #expect(abs(before - stamp) < 10_000)
                #expect(try keyOrder(String(decoding: delivery.body, as: UTF8.self)) == CompatTests.compatKeys)
                let job = try #require(try JSONSerialization.jsonObject(with: Data(delivery.body)) as? [String: Any])
                #expect(job["id"] as? String == id)
                #expect(job["stdout"] as? String == "héllo ✓")
                #expect(job["code"] as? Int == 0)
                #expect(job["callback"] as? String == "\(listener.url)/hook")
                let status = try await eventually("callback status") {
                    try await hub.get("/v1/jobs/\(id)").object()["callback_status"] as? String
                }
                #expect(status.hasPrefix("delivered: HTTP 200"))
                #expect(await listener.deliveries.count == 1)
            }
        }
    }

    @Test func everyEndIsPostedIncludingACancelBeforeTheStartAndAWorkersJob() async throws {
        try await withCallbackListener { listener in
            try await withHub({ $0.slots = 1 }) { hub in
                let blocker = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
                let waiting = try await hub.submit(#"{"command":"true","callback":"\#(listener.url)/queued"}"#)
                _ = try await hub.post("/v1/jobs/\(waiting)/cancel", "")
                _ = try await hub.post("/v1/jobs/\(blocker)/cancel", "")
                let worker = try TestWorker.start(hub: hub.url, name: "remote", labels: ["at": "worker"])
                let remote = try await hub.submit(
                    #"{"command":"echo","args":["far"],"labels":{"at":"worker"},"callback":"\#(listener.url)/remote"}"#)
                let paths = try await eventually("both callbacks") { () -> Set<String>? in
                    let paths = Set(await listener.deliveries.map(\.path))
                    return paths.count == 2 ? paths : nil
                }
                #expect(paths == ["/queued", "/remote"])
                let remoteBody = try #require(await listener.deliveries.first { $0.path == "/remote" }?.body)
                let job = try #require(try JSONSerialization.jsonObject(with: Data(remoteBody)) as? [String: Any])
                #expect(job["id"] as? String == remote)
                #expect(job["stdout"] as? String == "far\n")
                await worker.stop()
            }
        }
    }

    @Test func anUnreachableCallbackIsRetriedAndRecordedWithoutAffectingTheJob() async throws {
        try await withHub { hub in
            let id = try await hub.submit(#"{"command":"echo","args":["ok"],"callback":"http://127.0.0.1:1/x"}"#)
            let job = try await hub.ended(id)
            #expect(job["state"] as? String == "succeeded")
            let status = try await eventually("callback status") {
                try await hub.get("/v1/jobs/\(id)").object()["callback_status"] as? String
            }
            #expect(status == "failed after 3 attempt(s): connection refused")
            #expect(try await hub.get("/\(id)").object()["code"] as? Int == 0)
        }
    }

    @Test func aCallbackAnsweringErrorsIsRetriedThenRecorded() async throws {
        try await withCallbackListener(status: .internalServerError) { listener in
            try await withHub { hub in
                let id = try await hub.submit(#"{"command":"true","callback":"\#(listener.url)/fail"}"#)
                let status = try await eventually("callback status") {
                    try await hub.get("/v1/jobs/\(id)").object()["callback_status"] as? String
                }
                #expect(status == "failed after 3 attempt(s): HTTP 500")
                #expect(await listener.deliveries.count == 3)
                #expect(try await hub.state(id) == "succeeded")
            }
        }
    }
}

extension CallbackTests {
    @Test func withASecretEachCallbackIsSignedOverTimestampAndBody() async throws {
        try await withCallbackListener { listener in
            try await withHub({ $0.callbackSecret = Array("s3cret".utf8) }) { hub in
                let id = try await hub.submit(#"{"command":"echo","args":["signed"],"callback":"\#(listener.url)/s"}"#)
                let delivery = try await eventually("callback") { await listener.deliveries.first }
                let timestamp = try #require(delivery.timestamp)
                let signature = try #require(delivery.signature)
                // What a receiver does: HMAC-SHA256 of "TIMESTAMP.BODY" with the shared secret.
                let expected = HMAC<SHA256>.authenticationCode(
                    for: Array("\(timestamp).".utf8) + delivery.body, using: SymmetricKey(data: Array("s3cret".utf8)))
                #expect(signature == "sha256=" + expected.map { String(format: "%02x", $0) }.joined())
                // A changed body does not verify.
                let forged = HMAC<SHA256>.authenticationCode(
                    for: Array("\(timestamp).".utf8) + delivery.body + [0x20],
                    using: SymmetricKey(data: Array("s3cret".utf8)))
                #expect(signature != "sha256=" + forged.map { String(format: "%02x", $0) }.joined())
                #expect(try await hub.state(id) == "succeeded")
            }
            // Without a secret there is no signature header.
            try await withHub { hub in
                _ = try await hub.submit(#"{"command":"true","callback":"\#(listener.url)/plain"}"#)
                let plain = try await eventually("plain callback") {
                    await listener.deliveries.first { $0.path == "/plain" }
                }
                #expect(plain.signature == nil)
            }
        }
    }

    @Test func callbackHostsLimitWhereCallbacksMayGo() async throws {
        try await withHub({ $0.callbackHosts = ["hooks.example", "127.0.0.1"] }) { hub in
            let refused = try await hub.post("/v1/jobs", #"{"command":"true","callback":"http://evil.example/x"}"#)
            #expect(refused.status == 400)
            let error = try #require(try refused.object()["error"] as? [String: Any])
            #expect(error["field"] as? String == "callback")
            #expect((error["message"] as? String)?.contains("evil.example") == true)
            let compat = try await hub.post("/", #"{"command":"true","callback":"https://EVIL.example/x"}"#)
            #expect(compat.status == 400)
            #expect(try compat.object()["message"] as? String == "Bad Request")
            let allowed = try await hub.post(
                "/v1/jobs", #"{"command":"true","callback":"http://Hooks.Example:8080/x"}"#)
            #expect(allowed.status == 201)
        }
    }
}

/// Runs `body` with a listening `CallbackListener` and always stops it.
func withCallbackListener(
    status: HTTPResponse.Status = .ok, _ body: (CallbackListener) async throws -> Void
) async throws {
    let listener = try await CallbackListener.start(status: status)
    do {
        try await body(listener)
    } catch {
        await listener.stop()
        throw error
    }
    await listener.stop()
}

/// An HTTP server in the test that records every POST it receives.
final class CallbackListener: Sendable {
    struct Delivery: Sendable {
        var path: String
        var contentType: String?
        var contentLength: Int?
        var timestamp: String?
        var signature: String?
        var body: [UInt8]
    }

    actor Log {
        var deliveries: [Delivery] = []
        func add(_ delivery: Delivery) { deliveries.append(delivery) }
    }

    let url: String
    private let log: Log
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    var deliveries: [Delivery] {
        get async { await log.deliveries }
    }

    private init(url: String, log: Log, group: ServiceGroup, task: Task<Void, any Error>) {
        self.url = url
        self.log = log
        self.group = group
        self.task = task
    }

    static func start(status: HTTPResponse.Status = .ok) async throws -> CallbackListener {
        let log = Log()
        let router = Router()
        router.post("/**") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 64 << 20)
            await log.add(
                Delivery(
                    path: request.uri.path, contentType: request.headers[.contentType],
                    contentLength: request.headers[.contentLength].flatMap { Int($0) },
                    timestamp: request.headers[HTTPField.Name("X-Notify-Timestamp")!],
                    signature: request.headers[HTTPField.Name("X-Xn-Signature")!],
                    body: Array(body.readableBytesView)))
            return Response(status: status)
        }
        let (ports, sink) = AsyncStream.makeStream(of: Int.self)
        let logger = Logger(label: "test.listener") { _ in SwiftLogNoOpLogHandler() }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { sink.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task { try await group.run() }
        guard let port = try await withDeadline(.seconds(20), { await ports.first { _ in true } }) ?? nil else {
            throw TestFailure("listener did not start")
        }
        return CallbackListener(url: "http://127.0.0.1:\(port)", log: log, group: group, task: task)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}
