import Foundation
import Synchronization
import Testing

/// `GET /metrics`: what an operator's Prometheus scrapes from a busy hub.
@Suite(.timeLimit(.minutes(2)))
struct MetricsTests {
    @Test func aBusyHubsMetricsPassPromtoolAndMoveAsJobsRun() async throws {
        try await withCallbackListener { listener in
            try await withHub({ $0.slots = 1 }) { hub in
                let before = try await Exposition(hub)
                // Every end state and callback outcome is there before the first one happens.
                #expect(before[#"xn_jobs_ended_total{state="lost"}"#] == 0)
                #expect(before[#"xn_callbacks_total{outcome="failed"}"#] == 0)
                #expect(before[#"xn_worker_slots{worker="local"}"#] == 1)

                let printed = try await hub.submit(
                    #"{"command":"printf","args":["12345"],"callback":"\#(listener.url)/hook"}"#)
                let failed = try await hub.submit(#"{"command":"false"}"#)
                #expect(try await hub.ended(printed)["state"] as? String == "succeeded")
                #expect(try await hub.ended(failed)["state"] as? String == "failed")
                _ = try await eventually("callback delivered") {
                    try await hub.get("/v1/jobs/\(printed)").object()["callback_status"] as? String
                }

                // Busy: a worker with one slot runs a job, a second waits for it; a client watches.
                let worker = try TestWorker.start(hub: hub.url, name: "far", labels: ["at": "far"], slots: 1)
                try await eventually("worker far connected") {
                    try await hub.get("/v1/workers").text.contains(#""far""#) ? true : nil
                }
                let running = try await hub.submit(#"{"command":"sleep","args":["30"],"labels":{"at":"far"}}"#)
                let waiting = try await hub.submit(#"{"command":"true","labels":{"at":"far"}}"#)
                try await eventually("job on far running") { try await hub.state(running) == "running" ? true : nil }
                let scraped = Scraped()
                _ = try await attach(hub, running, query: "mode=read-only") { _, _ in
                    // The hub counts the session once it has found the job, just after the upgrade.
                    try await eventually("the attach session counted") { () -> Bool? in
                        let scrape = try await hub.get("/metrics")
                        guard try Exposition(scrape)[#"xn_attach_sessions_open"#] == 1 else { return nil }
                        scraped.set(scrape)
                        return true
                    }
                }
                let busy = try #require(scraped.value)
                #expect(busy.status == 200)
                #expect(busy.headers.first(name: "Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)

                let check = try promtool(busy.body)
                #expect(check.status == 0, "promtool check metrics: \(check.output)")

                let after = try Exposition(busy)
                #expect(after.moved(#"xn_jobs_submitted_total"#, from: before) == 4)
                #expect(after.moved(#"xn_jobs_ended_total{state="succeeded"}"#, from: before) == 1)
                #expect(after.moved(#"xn_jobs_ended_total{state="failed"}"#, from: before) == 1)
                #expect(after.moved(#"xn_output_bytes_stored_total{stream="stdout"}"#, from: before) == 5)
                #expect(after.moved(#"xn_callbacks_total{outcome="delivered"}"#, from: before) == 1)
                #expect(after.moved(#"xn_job_queue_wait_seconds_count"#, from: before) == 3)
                #expect(after.moved(#"xn_job_run_seconds_count"#, from: before) == 2)
                #expect(after[#"xn_jobs_running"#] == 1)
                #expect(after[#"xn_jobs_queued"#] == 1)
                #expect(after[#"xn_workers_connected"#] == 1)
                #expect(after[#"xn_worker_slots{worker="far"}"#] == 1)
                #expect(after[#"xn_worker_slots_busy{worker="far"}"#] == 1)
                #expect(after[#"xn_worker_slots_busy{worker="local"}"#] == 0)
                #expect(after[#"xn_attach_sessions_open"#] == 1)
                #expect(
                    after.moved(#"xn_http_requests_total{method="POST",route="/v1/jobs",status="201"}"#, from: before)
                        == 4)
                // Routes are templates, never job ids.
                #expect(after[#"xn_http_requests_total{method="GET",route="/v1/jobs/{id}",status="200"}"#] ?? 0 > 0)
                #expect(!busy.text.contains(running))

                // A worker that left loses its series; the session that closed is no longer open.
                _ = try await hub.post("/v1/jobs/\(running)/cancel", "")
                _ = try await hub.ended(waiting)
                await worker.stop()
                try await eventually("worker far gone") {
                    try await hub.get("/v1/workers").text.contains(#""far""#) ? nil : true
                }
                let quiet = try await Exposition(hub)
                #expect(quiet[#"xn_workers_connected"#] == 0)
                #expect(quiet[#"xn_worker_slots{worker="far"}"#] == nil)
                #expect(quiet[#"xn_attach_sessions_open"#] == 0)
                #expect(quiet[#"xn_jobs_running"#] == 0)
                #expect(quiet.moved(#"xn_jobs_ended_total{state="canceled"}"#, from: before) == 1)
            }
        }
    }

    @Test func aHubWithTokensShowsItsMetricsToReadersOnly() async throws {
        try await withHub { hub in
            let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
            let reader = try await hub.createToken(#"{"name":"grafana","role":"read"}"#, as: admin)
            let refused = try await hub.get("/metrics")
            #expect(refused.status == 401)
            #expect(refused.text.contains("unauthorized"))
            let allowed = try await request(
                .GET, hub.url + "/metrics", headers: [("Authorization", "Bearer \(reader)")])
            #expect(allowed.status == 200)
            #expect(allowed.text.contains("xn_jobs_submitted_total 0"))
        }
    }
}

/// One scrape, as a table from sample ("name{labels}") to value.
struct Exposition {
    let samples: [String: Double]

    init(_ hub: TestHub) async throws {
        try self.init(try await hub.get("/metrics"))
    }

    init(_ result: HTTPResult) throws {
        guard result.status == 200 else { throw TestFailure("GET /metrics: \(result.status) \(result.text)") }
        var samples: [String: Double] = [:]
        for line in result.text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw TestFailure("not a sample line: \(line)")
            }
            samples[String(line[..<space])] = value
        }
        self.samples = samples
    }

    subscript(_ sample: String) -> Double? { samples[sample] }

    /// How far a counter moved since `earlier` (a series that was not there counts from 0).
    func moved(_ sample: String, from earlier: Exposition) -> Double? {
        samples[sample].map { $0 - (earlier[sample] ?? 0) }
    }
}

/// A value set inside an attach session and read after it.
final class Scraped: Sendable {
    private let result = Mutex<HTTPResult?>(nil)

    func set(_ value: HTTPResult) { result.withLock { $0 = value } }
    var value: HTTPResult? { result.withLock { $0 } }
}

/// `promtool check metrics` (Debian's `prometheus` package) on an exposition: its exit status
/// and what it said.
func promtool(_ exposition: [UInt8]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["promtool", "check", "metrics"]
    let input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = output
    try process.run()
    input.fileHandleForWriting.write(Data(exposition))
    try input.fileHandleForWriting.close()
    let said = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: said, as: UTF8.self))
}
