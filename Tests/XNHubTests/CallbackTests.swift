import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import Testing
import XNProtocol

@testable import XNHub

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

extension CallbackTests {
    /// The job's v1 `callback_delivery`.
    static func delivery(_ hub: some ReachableHub, _ id: String) async throws -> [String: Any]? {
        try await hub.get("/v1/jobs/\(id)").object()["callback_delivery"] as? [String: Any]
    }

    @Test func aDeliveryTheHubWasRetryingWhenKilledResumesAfterARestart() async throws {
        try await withCallbackListener(status: .serviceUnavailable) { listener in
            let data = try temporaryFolder()
            let first = try await HubProcess.start(data: data)
            defer { first.killNow() }
            let id = try await first.submit(#"{"command":"echo","args":["once"],"callback":"\#(listener.url)/resume"}"#)
            // The first try failed (503) and the next one is scheduled: the hub dies then.
            let pending = try await eventually("a failed try recorded") { () -> [String: Any]? in
                let delivery = try await Self.delivery(first, id)
                return (delivery?["attempts"] as? Int ?? 0) >= 1 ? delivery : nil
            }
            #expect(pending["state"] as? String == "pending")
            #expect(pending["last_result"] as? String == "HTTP 503")
            #expect(pending["next_attempt_at"] is String)
            await first.kill()
            await listener.answer(.ok)
            let second = try await HubProcess.start(data: data)
            defer { second.killNow() }
            let delivered = try await eventually("delivered after the restart") { () -> [String: Any]? in
                let delivery = try await Self.delivery(second, id)
                return delivery?["state"] as? String == "delivered" ? delivery : nil
            }
            let posts = await listener.deliveries.filter { $0.path == "/resume" }
            #expect(delivered["attempts"] as? Int == posts.count, "every try is counted once")
            #expect(posts.count >= 2)
            #expect(delivered["last_result"] as? String == "HTTP 200")
            let status = try await second.get("/v1/jobs/\(id)").object()["callback_status"] as? String
            #expect(status == "delivered: HTTP 200 on attempt \(posts.count)")
            let job = try #require(try JSONSerialization.jsonObject(with: Data(posts.last!.body)) as? [String: Any])
            #expect(job["id"] as? String == id && job["stdout"] as? String == "once\n")
            await second.kill()
        }
    }

    @Test func theAddressConnectedToIsCheckedNotJustTheName() async throws {
        try await withCallbackListener { listener in
            let port = try #require(URL(string: listener.url)?.port)
            let url = "http://localhost:\(port)/by-name"
            // A network list: the name passes at submission, its address (127.0.0.1) does not.
            try await withHub({ $0.callbackHosts = ["10.0.0.0/8"] }) { hub in
                let id = try await hub.submit(#"{"command":"true","callback":"\#(url)"}"#)
                let failed = try await eventually("refused at delivery") { () -> [String: Any]? in
                    let delivery = try await Self.delivery(hub, id)
                    return delivery?["state"] as? String == "failed" ? delivery : nil
                }
                #expect(failed["attempts"] as? Int == 1, "a refused address is not tried again")
                let reason = failed["last_result"] as? String ?? ""
                #expect(reason.contains("localhost resolves to "), "\(reason)")
                #expect(reason.contains("which --callback-hosts does not allow"), "\(reason)")
                #expect(await listener.deliveries.isEmpty, "nothing reached the address")
            }
            try await withHub({ $0.callbackHosts = ["10.0.0.0/8", "127.0.0.0/8", "::1"] }) { hub in
                let id = try await hub.submit(#"{"command":"true","callback":"\#(url)"}"#)
                let delivered = try await eventually("delivered") { () -> [String: Any]? in
                    let delivery = try await Self.delivery(hub, id)
                    return delivery?["state"] as? String == "delivered" ? delivery : nil
                }
                #expect(delivered["attempts"] as? Int == 1)
                #expect(await listener.deliveries.map(\.path) == ["/by-name"])
            }
        }
    }

    @Test func linkLocalAndMetadataAddressesAreRefusedUnlessNamed() async throws {
        try await withHub { hub in
            for url in [
                "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://100.100.100.200/",
                "http://[::ffff:169.254.169.254]/", "http://0.0.0.0:9000/",
            ] {
                let refused = try await hub.post("/v1/jobs", #"{"command":"true","callback":"\#(url)"}"#)
                #expect(refused.status == 400, "\(url)")
                #expect(refused.text.contains("name it in --callback-hosts"), "\(url): \(refused.text)")
            }
        }
        try await withHub({ $0.callbackHosts = ["169.254.169.254"] }) { hub in
            let named = try await hub.post(
                "/v1/jobs", #"{"command":"true","callback":"http://169.254.169.254/latest/meta-data/"}"#)
            #expect(named.status == 201)
        }
    }

    @Test func thePolicyJudgesAddressesAsTheKernelWouldReachThem() {
        let open = CallbackPolicy([])
        #expect(open.refusal(host: "metadata.example", address: [169, 254, 169, 254])?.contains("link-local") == true)
        #expect(open.refusal(host: "a.example", address: [10, 1, 2, 3]) == nil)
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 169, 254, 1, 1]
        #expect(open.refusal(host: "a.example", address: mapped)?.contains("a.example resolves to 169.254.1.1") == true)
        #expect(open.refusal(host: "b.example", address: [0xfe, 0x80] + Array(repeating: 0, count: 13) + [1]) != nil)
        let listed = CallbackPolicy(["hooks.example", "192.168.0.0/16", "169.254.169.254"])
        #expect(listed.refusal(host: "hooks.example", address: [8, 8, 8, 8]) == nil, "a listed name, any address")
        #expect(listed.refusal(host: "other.example", address: [192, 168, 7, 7]) == nil, "an address in a network")
        #expect(listed.refusal(host: "other.example", address: [192, 169, 0, 1]) != nil)
        #expect(listed.refusal(host: "meta", address: [169, 254, 169, 254]) == nil, "named as an address")
        #expect(listed.refusal(host: "hooks.example", address: [169, 254, 0, 1]) != nil, "link-local, not named")
        #expect(
            CallbackPolicy.invalidEntries(["10.0.0.0/8", "hooks.example", "10.0.0.0/33", "x/y"]) == [
                "10.0.0.0/33", "x/y",
            ])
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
        var status: HTTPResponse.Status
        init(status: HTTPResponse.Status) { self.status = status }
        /// Records a delivery and gives the status to answer it with.
        func add(_ delivery: Delivery) -> HTTPResponse.Status {
            deliveries.append(delivery)
            return status
        }
        func answer(_ status: HTTPResponse.Status) { self.status = status }
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
        let log = Log(status: status)
        let router = Router()
        router.post("/**") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 64 << 20)
            let answer = await log.add(
                Delivery(
                    path: request.uri.path, contentType: request.headers[.contentType],
                    contentLength: request.headers[.contentLength].flatMap { Int($0) },
                    timestamp: request.headers[HTTPField.Name("X-Notify-Timestamp")!],
                    signature: request.headers[HTTPField.Name("X-Xn-Signature")!],
                    body: Array(body.readableBytesView)))
            return Response(status: answer)
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

    /// Answers later deliveries with `status`.
    func answer(_ status: HTTPResponse.Status) async {
        await log.answer(status)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}
