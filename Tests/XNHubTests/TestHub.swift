import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import XNExec
import XNHub
import XNProtocol
import XNStore
import XNWorker

/// A real hub on 127.0.0.1 and a free port, running jobs on real processes, in this process.
final class TestHub: Sendable {
    let url: String
    let port: Int
    let dataDirectory: String?
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    private init(url: String, port: Int, dataDirectory: String?, group: ServiceGroup, task: Task<Void, any Error>) {
        self.url = url
        self.port = port
        self.dataDirectory = dataDirectory
        self.group = group
        self.task = task
    }

    /// Starts a hub; `configure` adjusts the test defaults (in-memory store, 2 slots, short graces).
    static func start(_ configure: (inout TestHubSetup) -> Void = { _ in }) async throws -> TestHub {
        var setup = TestHubSetup()
        setup.port = 0
        setup.dataDirectory = nil
        setup.shutdownGrace = .seconds(2)
        setup.killGrace = .seconds(1)
        setup.callbackBackoff = .milliseconds(20)
        configure(&setup)
        let configuration = setup.hub
        let logger = Logger(label: "test.hub") { _ in SwiftLogNoOpLogHandler() }
        let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
        let app = try buildApplication(
            configuration: configuration, localWorker: setup.localWorker(logger: logger), store: setup.store,
            logger: logger
        ) { port in
            portSink.yield(port)
        }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task { try await group.run() }
        guard let port = try await withDeadline(.seconds(20), { await ports.first { _ in true } }) ?? nil else {
            task.cancel()
            throw TestFailure("hub did not start listening")
        }
        return TestHub(
            url: "http://127.0.0.1:\(port)", port: port, dataDirectory: configuration.dataDirectory, group: group,
            task: task)
    }

    /// Graceful shutdown, as on Ctrl-C; waits for the hub to finish.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await withDeadline(.seconds(20)) { try? await self.task.value }
    }
}

/// What a test hub is made of, composed as `xn hub` composes it: the hub's configuration (its
/// fields read and write through), its own slots as an in-process worker, and optionally a store
/// of the test's.
@dynamicMemberLookup
struct TestHubSetup {
    var hub = HubConfiguration()
    /// The hub's own slots; 0 starts no in-process worker (`xn hub --no-local`).
    var slots = 2
    /// Replaces the in-memory SQLite store.
    var store: (any JobStore & TranscriptStore & TokenStore)?
    private var localLimits = ResourceLimits()

    /// Limits of the hub's own slots, which are also the most a job may ask for (as `--limit-*`).
    var jobLimits: ResourceLimits {
        get { localLimits }
        set {
            localLimits = newValue
            hub.jobLimits = newValue.asJobLimits
        }
    }

    subscript<T>(dynamicMember keyPath: WritableKeyPath<HubConfiguration, T>) -> T {
        get { hub[keyPath: keyPath] }
        set { hub[keyPath: keyPath] = newValue }
    }

    func localWorker(logger: Logger) -> LocalWorker? {
        guard slots > 0 else { return nil }
        var runner = RunnerConfiguration(name: WireProtocol.inProcessWorkerName, description: "hub")
        runner.drainGrace = hub.shutdownGrace
        runner.killGrace = hub.killGrace
        runner.jobLimits = localLimits
        return LocalWorker(configuration: runner, slots: slots, executor: PipeExecutor(), logger: logger)
    }
}

/// Runs `body` against a fresh hub and always stops it.
func withHub<T>(
    _ configure: (inout TestHubSetup) -> Void = { _ in }, _ body: (TestHub) async throws -> T
) async throws -> T {
    let hub = try await TestHub.start(configure)
    do {
        let result = try await body(hub)
        await hub.stop()
        return result
    } catch {
        await hub.stop()
        throw error
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The value of `body`, or nil if it takes longer than `timeout`.
func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T?
{
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

@discardableResult
/// Polls `check` until it returns a value or `timeout` passes (then throws naming `what`).
func eventually<T>(
    _ what: String, timeout: Duration = .seconds(15), _ check: () async throws -> T?
) async throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        if let value = try await check() { return value }
        if clock.now > deadline { throw TestFailure("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// One HTTP exchange as a test sees it.
struct HTTPResult: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object (fails the test if it is not one).
    func object() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw TestFailure("body is not a JSON object: \(text)")
        }
        return object
    }
}

/// Sends one request; `body` as raw bytes or a string. `headOnly`: a successful answer's body is
/// not read (an endless stream); a refusal's is.
func request(
    _ method: HTTPMethod, _ url: String, body: String? = nil, bytes: [UInt8]? = nil,
    headers: [(String, String)] = [], headOnly: Bool = false
) async throws -> HTTPResult {
    var request = HTTPClientRequest(url: url)
    request.method = method
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body { request.body = .bytes(ByteBuffer(string: body)) }
    if let bytes { request.body = .bytes(ByteBuffer(bytes: bytes)) }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
    if headOnly, response.status.code < 300 {
        return HTTPResult(status: Int(response.status.code), headers: response.headers, body: [])
    }
    let buffer = try await response.body.collect(upTo: 64 << 20)
    return HTTPResult(
        status: Int(response.status.code), headers: response.headers, body: Array(buffer.readableBytesView))
}

/// A hub a test talks to over HTTP: one in the test process or one started as `xn hub`.
protocol ReachableHub {
    var url: String { get }
}

extension TestHub: ReachableHub {}
extension HubProcess: ReachableHub {}

extension ReachableHub {
    func get(_ path: String) async throws -> HTTPResult { try await request(.GET, url + path) }
    func post(_ path: String, _ body: String) async throws -> HTTPResult {
        try await request(.POST, url + path, body: body)
    }

    /// Submits a v1 job (JSON body) and returns its id.
    func submit(_ json: String) async throws -> String {
        let result = try await post("/v1/jobs", json)
        guard result.status == 201, let id = try result.object()["id"] as? String else {
            throw TestFailure("submit failed: \(result.status) \(result.text)")
        }
        return id
    }

    /// The v1 job once it has ended.
    func ended(_ id: String, timeout: Duration = .seconds(20)) async throws -> [String: Any] {
        try await eventually("job \(id) to end", timeout: timeout) {
            let job = try await get("/v1/jobs/\(id)?wait=2").object()
            let state = job["state"] as? String ?? ""
            return ["succeeded", "failed", "canceled", "timed_out", "lost"].contains(state) ? job : nil
        }
    }

    func state(_ id: String) async throws -> String {
        try await get("/v1/jobs/\(id)").object()["state"] as? String ?? "?"
    }
}

/// Paths of the binaries built with the tests (xn, xn-testtask).
enum Binaries {
    static let folder: URL = {
        let fileManager = FileManager.default
        var candidate = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            if fileManager.isExecutableFile(atPath: candidate.appendingPathComponent("xn-testtask").path) {
                return candidate
            }
            candidate.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug")
    }()

    static var xn: String { folder.appendingPathComponent("xn").path }
    static var testtask: String { folder.appendingPathComponent("xn-testtask").path }
}

/// A fresh temporary folder.
func temporaryFolder() throws -> String {
    let path = NSTemporaryDirectory() + "xn-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Waits until a process runs exactly `arguments` (a command typed into a job has started).
func waitForProcess(_ arguments: [String], timeout: Duration = .seconds(15)) async throws {
    try await eventually("\(arguments.joined(separator: " ")) running", timeout: timeout) {
        ProcessTable.members(running: arguments).isEmpty ? nil : true
    }
}

/// Whether a pid is gone: no /proc entry, or a zombie nobody reaped yet.
func processIsGone(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
    guard let close = stat.lastIndex(of: ")") else { return true }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return fields.first == "Z" || fields.first == "X"
}
