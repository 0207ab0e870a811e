import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import XNExec
import XNHub
import XNProtocol
import XNStore
import XNWorker

/// A hub in this process on a free loopback port, with a SQLite store in a temporary folder.
final class BenchHub: Sendable {
    let url: String
    let preloaded: [String]
    private let group: ServiceGroup
    private let task: Task<Void, any Error>
    private let client: HTTPClient
    /// The data folder, deleted when the hub stops (an ingest run leaves a GiB of output in it).
    private let folder: String

    private init(
        url: String, preloaded: [String], group: ServiceGroup, task: Task<Void, any Error>, folder: String
    ) {
        self.folder = folder
        self.url = url
        self.preloaded = preloaded
        self.group = group
        self.task = task
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        configuration.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    static func start(slots: Int, preloadFinishedJobs: Int = 0, maxOutput: Int = 16 << 20) async throws -> BenchHub {
        let folder = NSTemporaryDirectory() + "xn-bench-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let preloaded = try await preload(preloadFinishedJobs, into: folder + "/xn.sqlite")
        var configuration = HubConfiguration()
        configuration.port = 0
        configuration.dataDirectory = folder
        configuration.maxOutputBytes = maxOutput
        let logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
        let (ports, sink) = AsyncStream.makeStream(of: Int.self)
        var runner = RunnerConfiguration(name: WireProtocol.inProcessWorkerName, description: "hub")
        runner.isolatesJobs = benchIsolates
        let localWorker =
            slots == 0
            ? nil
            : LocalWorker(configuration: runner, slots: slots, executor: benchExecutor, logger: logger)
        let app = try buildApplication(configuration: configuration, localWorker: localWorker, logger: logger) {
            sink.yield($0)
        }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task { try await group.run() }
        guard let port = await ports.first(where: { _ in true }) else { throw BenchError("hub did not start") }
        return BenchHub(url: "http://127.0.0.1:\(port)", preloaded: preloaded, group: group, task: task, folder: folder)
    }

    func stop() async {
        try? await client.shutdown()
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Submit with `?wait=` and time until the finished job comes back, one at a time.
    func sequentialLatency(iterations: Int) async throws -> Sample {
        var durations: [Double] = []
        let start = now()
        for _ in 0..<iterations {
            durations.append(try await submitAndWait())
        }
        return Sample(durations: durations, wall: now() - start)
    }

    /// What HTTP alone costs a sequential submit→exit: `GET /healthz` (a round trip with no work
    /// behind it) and `POST ?wait` of `/bin/true`, each one at a time, through this client and
    /// through a blocking socket on a thread of its own (no event loop, no task hops).
    func httpFloors(
        iterations: Int
    ) async throws -> (health: Sample, plainHealth: Sample, job: Sample, plainJob: Sample) {
        var durations: [Double] = []
        let start = now()
        for _ in 0..<iterations {
            let began = now()
            let response = try await client.execute(HTTPClientRequest(url: url + "/healthz"), timeout: .seconds(30))
            _ = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else { throw BenchError("GET /healthz: \(response.status)") }
            durations.append(now() - began)
        }
        let health = Sample(durations: durations, wall: now() - start)
        let job = try await sequentialLatency(iterations: iterations)
        guard let port = Int(url.split(separator: ":").last ?? "") else { throw BenchError("no port in \(url)") }
        let (plainHealth, plainJob) = try await PlainHTTP.onThread { () throws -> (Sample, Sample) in
            let connection = try PlainHTTP(port: port)
            let health = try Self.timed(iterations) { _ = try connection.request("GET", "/healthz") }
            let job = try Self.timed(iterations) {
                let body = try connection.request("POST", "/v1/jobs?wait=60", body: #"{"command":"/bin/true"}"#)
                guard body.contains(#""state":"succeeded""#) else { throw BenchError("submit: \(body)") }
            }
            return (health, job)
        }
        return (health, plainHealth, job, plainJob)
    }

    private static func timed(_ iterations: Int, _ operation: () throws -> Void) rethrows -> Sample {
        var durations: [Double] = []
        let start = now()
        for _ in 0..<iterations {
            let began = now()
            try operation()
            durations.append(now() - began)
        }
        return Sample(durations: durations, wall: now() - start)
    }

    /// `submitters` clients each submit-and-wait in a loop until `jobs` jobs completed.
    func throughput(submitters: Int, jobs: Int) async throws -> Sample {
        try await concurrently(workers: submitters, total: jobs) { try await self.submitAndWait() }
    }

    /// `GET /<id>` of random stored jobs from `concurrency` clients.
    func lookupRate(concurrency: Int, requests: Int) async throws -> (stored: Int, p50: Double, rate: Double) {
        let ids = preloaded
        let sample = try await concurrently(workers: concurrency, total: requests) {
            let id = ids.randomElement()!
            let began = now()
            let response = try await self.client.execute(
                HTTPClientRequest(url: self.url + "/" + id), timeout: .seconds(30))
            _ = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else { throw BenchError("GET /\(id): \(response.status)") }
            return now() - began
        }
        return (ids.count, sample.p50, sample.rate)
    }

    /// Waits until `count` workers are connected.
    func waitForWorkers(_ count: Int) async throws {
        for _ in 0..<500 {
            let response = try await client.execute(HTTPClientRequest(url: url + "/v1/workers"), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            if String(buffer: body).components(separatedBy: "\"name\"").count - 1 >= count { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchError("no worker connected")
    }

    /// Runs one job that writes `bytes` to stdout and returns the rate its output was stored at
    /// (bytes per second, submit to end). Polls the job list, whose entries carry no output text.
    func ingest(bytes: Int) async throws -> Double {
        var request = HTTPClientRequest(url: url + "/v1/jobs")
        request.method = .POST
        request.body = .bytes(
            ByteBuffer(string: #"{"command":"head","args":["-c","\#(bytes)","/dev/zero"]}"#))
        let began = now()
        let response = try await client.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        while now() - began < 600 {
            let list = try await client.execute(HTTPClientRequest(url: url + "/v1/jobs?limit=1"), timeout: .seconds(30))
            let body = String(buffer: try await list.body.collect(upTo: 1 << 20))
            if body.contains(#""state":"succeeded""#) {
                guard body.contains(#""stdout_bytes":\#(bytes)"#) else {
                    throw BenchError("ingest: \(body.prefix(300))")
                }
                return Double(bytes) / (now() - began)
            }
            if body.contains(#""state":"failed""#) || body.contains(#""state":"lost""#) {
                throw BenchError("ingest: \(body.prefix(300))")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw BenchError("ingest did not finish")
    }

    /// Submits a v1 job body and returns its id.
    func submitJSON(_ json: String) async throws -> String {
        var request = HTTPClientRequest(url: url + "/v1/jobs")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        guard response.status == .created, let start = body.range(of: #""id":""#),
            let end = body[start.upperBound...].firstIndex(of: "\"")
        else { throw BenchError("submit: \(response.status) \(body.prefix(300))") }
        return String(body[start.upperBound..<end])
    }

    private func submitAndWait() async throws -> Double {
        var request = HTTPClientRequest(url: url + "/v1/jobs?wait=60")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: #"{"command":"/bin/true"}"#))
        let began = now()
        let response = try await client.execute(request, timeout: .seconds(90))
        let body = try await response.body.collect(upTo: 1 << 20)
        let elapsed = now() - began
        // A byte search: Foundation's String.contains took 0.7% of a 32-submitter run's samples,
        // on the cores the hub measured beside it needs.
        guard response.status == .created, body.readableBytesView.firstRange(of: Self.succeeded) != nil else {
            throw BenchError("submit: \(response.status) \(String(buffer: body))")
        }
        return elapsed
    }

    private static let succeeded = Array(#""state":"succeeded""#.utf8)

    /// Writes `count` finished jobs straight into a new store, in batches.
    static func preload(_ count: Int, into path: String) async throws -> [String] {
        guard count > 0 else { return [] }
        let store = try SQLiteJobStore(path: path)
        var ids: [String] = []
        let created = Timestamp.now()
        for batchStart in stride(from: 0, to: count, by: 10_000) {
            var batch: [JobRecord] = []
            for index in batchStart..<min(count, batchStart + 10_000) {
                var job = JobRecord(
                    id: .random(), spec: JobSpec(command: "echo", args: ["\(index)"]), createdAt: created)
                job.state = .succeeded
                job.exitCode = 0
                job.startedAt = created
                job.finishedAt = created
                job.worker = "local"
                batch.append(job)
                ids.append(job.id.rawValue)
            }
            _ = try await store.insertBatch(batch)
        }
        return ids
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `operation` `total` times from `workers` concurrent loops; each call returns its duration.
func concurrently(
    workers: Int, total: Int, _ operation: @escaping @Sendable () async throws -> Double
) async throws -> Sample {
    let next = Counter()
    let start = now()
    let durations = try await withThrowingTaskGroup(of: [Double].self) { group in
        for _ in 0..<workers {
            group.addTask {
                var mine: [Double] = []
                while next.take() <= total { mine.append(try await operation()) }
                return mine
            }
        }
        var all: [Double] = []
        for try await part in group { all += part }
        return all
    }
    return Sample(durations: durations, wall: now() - start)
}

/// Hands out 1, 2, 3, … to concurrent loops.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)

    func take() -> Int { value.add(1, ordering: .relaxed).newValue }
}

/// `--isolate`: the hub's slots and the worker run every job in a sandbox, as with `xn hub --isolate`.
let benchIsolates = CommandLine.arguments.contains("--isolate")

/// The executor for the hub's slots and the worker: with a cgroup per job under `--cgroups`, and
/// bubblewrap under `--isolate`.
let (benchExecutor, benchCgroupsBanner): (PipeExecutor, String) = {
    var sandbox: Sandbox?
    if benchIsolates {
        switch Sandbox.discover(hiding: []) {
        case .success(let found): sandbox = found
        case .failure(let reason):
            print("--isolate: \(reason)")
            exit(1)
        }
    }
    let isolation = benchIsolates ? "; every job isolated (bubblewrap)" : ""
    guard CommandLine.arguments.contains("--cgroups") else {
        return (PipeExecutor(sandbox: sandbox), "no cgroups" + isolation)
    }
    switch CgroupHost.discover() {
    case .success(let host): return (PipeExecutor(cgroups: host, sandbox: sandbox), host.description + isolation)
    case .failure(let reason):
        print("--cgroups: \(reason)")
        exit(1)
    }
}()
