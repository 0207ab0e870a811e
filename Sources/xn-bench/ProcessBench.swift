import AsyncHTTPClient
import Foundation
import Glibc
import NIOCore
import NIOHTTP1

/// A big job's output as a user's run moves it: `xn hub` (no slots of its own), `xn worker` and
/// `xn attach` as processes of their own, not tasks sharing this one, so each one's peak memory
/// (VmHWM) can be read. Two runs, each on new processes so each peak is that run's alone: the
/// output stored from the worker, then the same with a client attached all along (its output
/// to /dev/null).
enum ProcessBench {
    /// One run: seconds from the submission to the stored end (and to the attached client's
    /// exit), and the peak RSS of each process, in KiB.
    struct Run {
        var stored: Double
        var attached: Double?
        var hubPeak: Int
        var workerPeak: Int
        var clientPeak: Int?
    }

    static func run(mebibytes: Int) async throws {
        let bytes = mebibytes << 20
        print("processes: \(StartupBench.xn) hub, worker and attach; a job writing \(mebibytes) MiB through the worker")
        let raw = RawPipe.throughput(bytes: bytes)
        let plain = try await measure(bytes: bytes, attach: false)
        let attached = try await measure(bytes: bytes, attach: true)
        let storedRate = Double(bytes) / plain.stored
        let attachRate = Double(bytes) / (attached.attached ?? .nan)
        print("  raw pipe (head -c into a reader)        \(mbps(raw))")
        print(
            "  stored from the worker                  \(mbps(storedRate)) (\(percent(storedRate / raw)) of raw); "
                + "peak RSS hub \(mib(plain.hubPeak)), worker \(mib(plain.workerPeak))")
        print(
            "  to a client attached all along          \(mbps(attachRate)) (\(percent(attachRate / raw)) of raw); "
                + "peak RSS hub \(mib(attached.hubPeak)), worker \(mib(attached.workerPeak)), "
                + "client \(attached.clientPeak.map(mib) ?? "?")")
    }

    private static func mib(_ kibibytes: Int) -> String {
        String(format: "%.1f MiB", Double(kibibytes) / 1024)
    }

    /// New hub and worker processes, one job writing `bytes`, and with `attach` an `xn attach`
    /// started right after the submission; every process is stopped before this returns.
    private static func measure(bytes: Int, attach: Bool) async throws -> Run {
        let folder = NSTemporaryDirectory() + "xn-bench-processes-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder + "/data", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let asRoot = getuid() == 0 ? ["--allow-root"] : []
        var started: [Process] = []
        defer {
            for process in started where process.isRunning { process.terminate() }
            for process in started { process.waitUntilExit() }
        }

        let hub = Process()
        hub.executableURL = URL(fileURLWithPath: StartupBench.xn)
        hub.arguments =
            ["hub", "-p", "0", "--data", folder + "/data", "--no-local", "--log-level", "error"] + asRoot
        let banner = Pipe()
        hub.standardOutput = banner
        hub.standardError = FileHandle.nullDevice
        try hub.run()
        started.append(hub)
        guard let url = try WrkBench.readURL(from: banner.fileHandleForReading, within: 60) else {
            throw BenchError("the hub did not print its address within 60 s")
        }

        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: StartupBench.xn)
        worker.arguments =
            ["worker", "--hub", url, "--name", "bench-worker", "--spool", folder + "/spool", "--log-level", "error"]
            + asRoot
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try worker.run()
        started.append(worker)
        try await waitUntil(within: 30, "the worker did not connect within 30 s") {
            try await get(url + "/v1/workers").contains(#""bench-worker""#)
        }

        let began = now()
        let id = try await submit(url, #"{"command":"head","args":["-c","\#(bytes)","/dev/zero"]}"#)
        var client: Process?
        if attach {
            let attaching = Process()
            attaching.executableURL = URL(fileURLWithPath: StartupBench.xn)
            attaching.arguments = ["attach", id, "--read-only"]
            attaching.environment = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "XN_HUB": url]
            attaching.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            attaching.standardError = FileHandle.nullDevice
            try attaching.run()
            started.append(attaching)
            client = attaching
        }
        var ended: [String: Any] = [:]
        // The client's peak is read while it runs: /proc forgets a process once it is reaped.
        var clientPeak = 0
        func sampleClient() {
            if let client, client.isRunning { clientPeak = max(clientPeak, peakKiB(of: client.processIdentifier)) }
        }
        try await waitUntil(within: 600, "job \(id) did not end within 600 s") {
            sampleClient()
            ended = try await job(url, id)
            return ["succeeded", "failed", "canceled", "lost"].contains(ended["state"] as? String ?? "")
        }
        let stored = now() - began
        guard ended["state"] as? String == "succeeded", ended["stdout_bytes"] as? Int == bytes else {
            throw BenchError(
                "job \(id) ended \(ended["state"] ?? "?") with \(ended["stdout_bytes"] ?? "?") bytes stored")
        }
        var run = Run(
            stored: stored, hubPeak: peakKiB(of: hub.processIdentifier),
            workerPeak: peakKiB(of: worker.processIdentifier))
        if let client {
            try await waitUntil(within: 600, "xn attach did not end within 600 s of the job") {
                sampleClient()
                return !client.isRunning
            }
            run.attached = now() - began
            guard client.terminationStatus == 0 else {
                throw BenchError("xn attach exited with status \(client.terminationStatus)")
            }
            run.clientPeak = clientPeak
            // The hub may still be sending when the job's end is stored: its peak is read last.
            run.hubPeak = peakKiB(of: hub.processIdentifier)
        }
        return run
    }

    /// VmHWM of `pid` in KiB (0 when /proc has no such process).
    static func peakKiB(of pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }

    /// Polls `condition` every 20 ms; throws `failure` once `seconds` pass without it.
    private static func waitUntil(
        within seconds: Double, _ failure: String, _ condition: () async throws -> Bool
    ) async throws {
        let deadline = now() + seconds
        while now() < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchError(failure)
    }

    private static func get(_ url: String) async throws -> String {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else { throw BenchError("GET \(url): \(response.status)") }
        return String(buffer: body)
    }

    private static func submit(_ url: String, _ spec: String) async throws -> String {
        var request = HTTPClientRequest(url: url + "/v1/jobs")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: spec))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .created,
            let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
            let id = object["id"] as? String
        else { throw BenchError("submit: \(response.status) \(String(buffer: body))") }
        return id
    }

    /// The job from the list (whose entries carry no output text, unlike `GET /v1/jobs/ID`).
    private static func job(_ url: String, _ id: String) async throws -> [String: Any] {
        let text = try await get(url + "/v1/jobs?limit=1")
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let jobs = object["jobs"] as? [[String: Any]], let job = jobs.first, job["id"] as? String == id
        else { throw BenchError("the job list does not start with job \(id): \(text.prefix(300))") }
        return job
    }
}
