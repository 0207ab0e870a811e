import HTTPTypes
import Prometheus
import Synchronization
import XNProtocol

/// The hub's metrics for `GET /metrics`, in Prometheus' text format. Each hub has its own
/// registry (several hubs in one test process never share counts); counters move as things
/// happen, gauges of what the scheduler holds are read at each scrape.
public final class HubMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()

    private let submitted: Counter
    private let queueWait: DurationHistogram
    private let runTime: DurationHistogram
    private let queued: Gauge
    private let running: Gauge
    private let workersConnected: Gauge
    private let attachOpen: Gauge
    private let attachOpened: Counter

    /// What the scheduler holds at a scrape.
    struct Snapshot: Sendable {
        struct Worker: Sendable {
            var name: String
            var slots: Int
            var busy: Int
        }

        var queued: Int
        var running: Int
        var workers: [Worker]
    }

    /// Worker names with slot gauges, so a worker that left loses its series at the next scrape.
    private let workerSeries = Mutex<Set<String>>([])

    public init() {
        submitted = registry.makeCounter(descriptor: Self.name("jobs_submitted_total", "Jobs the hub accepted."))
        queueWait = registry.makeDurationHistogram(
            descriptor: Self.name(
                "job_queue_wait_seconds", "Time from a job's submission to its process running, per attempt."),
            buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600]
                .map(Duration.seconds))
        runTime = registry.makeDurationHistogram(
            descriptor: Self.name("job_run_seconds", "Time from a job's start to its end, for jobs that started."),
            buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14_400, 86_400]
                .map(Duration.seconds))
        queued = registry.makeGauge(descriptor: Self.name("jobs_queued", "Jobs waiting for a slot."))
        running = registry.makeGauge(
            descriptor: Self.name("jobs_running", "Jobs placed on a worker or the hub's slots and not yet ended."))
        workersConnected = registry.makeGauge(
            descriptor: Self.name("workers_connected", "Remote workers connected (the hub's own slots not counted)."))
        attachOpen = registry.makeGauge(descriptor: Self.name("attach_sessions_open", "Clients attached to jobs now."))
        attachOpened = registry.makeCounter(
            descriptor: Self.name("attach_sessions_opened_total", "Attach sessions opened since the hub started."))
        // Every end state from the start, so a dashboard sees 0 before the first failure.
        for state in JobState.allCases where state.isTerminal { _ = ended(state) }
        for outcome in CallbackOutcome.allCases { _ = callbacks(outcome) }
        for stream in OutputStreamKind.allCases { _ = output(stream) }
    }

    // MARK: - Events

    func jobSubmitted() {
        submitted.increment()
    }

    /// An attempt's process is running, `waited` after the job was submitted.
    func jobStarted(waited: Duration) {
        queueWait.record(max(.zero, waited))
    }

    /// An end was stored.
    func jobEnded(_ job: JobRecord) {
        ended(job.state).increment()
        if let started = job.startedAt, let end = job.finishedAt {
            runTime.record(.milliseconds(max(0, end - started)))
        }
    }

    func outputStored(_ stream: OutputStreamKind, bytes: Int) {
        output(stream).increment(by: Int64(bytes))
    }

    enum CallbackOutcome: String, CaseIterable {
        case delivered, failed
    }

    func callbackFinished(_ outcome: CallbackOutcome) {
        callbacks(outcome).increment()
    }

    func attachOpened(_ opened: Bool) {
        if opened {
            attachOpen.increment()
            attachOpened.increment()
        } else {
            attachOpen.decrement()
        }
    }

    func request(method: HTTPRequest.Method, route: String, status: Int, duration: Duration) {
        let key = RequestSeries(method: method.rawValue, route: route, status: status)
        // The registry checks names and labels on every lookup: keep each series once found.
        let series = requestSeries.withLock { known in
            if let found = known[key] { return found }
            let made = (
                registry.makeCounter(
                    descriptor: Self.name("http_requests_total", "HTTP requests answered, by route and status."),
                    labels: [("method", key.method), ("route", route), ("status", String(status))]),
                registry.makeDurationHistogram(
                    descriptor: Self.name("http_request_duration_seconds", "Time to answer an HTTP request, by route."),
                    labels: [("method", key.method), ("route", route)],
                    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
                        .map(Duration.seconds))
            )
            known[key] = made
            return made
        }
        series.0.increment()
        series.1.record(duration)
    }

    private struct RequestSeries: Hashable {
        var method: String
        var route: String
        var status: Int
    }

    private let requestSeries = Mutex<[RequestSeries: (Counter, DurationHistogram)]>([:])

    // MARK: - Scrape

    /// The exposition, with the scheduler's gauges set from `snapshot` first.
    func exposition(_ snapshot: Snapshot) -> [UInt8] {
        queued.set(to: Double(snapshot.queued))
        running.set(to: Double(snapshot.running))
        workersConnected.set(to: Double(snapshot.workers.count { $0.name != WireProtocol.inProcessWorkerName }))
        let slots = Self.name("worker_slots", "Slots a worker (or the hub itself, worker=\"local\") offers.")
        let busy = Self.name("worker_slots_busy", "A worker's slots holding a job.")
        workerSeries.withLock { known in
            let current = Set(snapshot.workers.map(\.name))
            for gone in known.subtracting(current) {
                registry.unregisterGauge(registry.makeGauge(descriptor: slots, labels: [("worker", gone)]))
                registry.unregisterGauge(registry.makeGauge(descriptor: busy, labels: [("worker", gone)]))
            }
            for worker in snapshot.workers {
                registry.makeGauge(descriptor: slots, labels: [("worker", worker.name)]).set(to: Double(worker.slots))
                registry.makeGauge(descriptor: busy, labels: [("worker", worker.name)]).set(to: Double(worker.busy))
            }
            known = current
        }
        return registry.emitToBuffer()
    }

    // MARK: - Families

    private func ended(_ state: JobState) -> Counter {
        registry.makeCounter(
            descriptor: Self.name("jobs_ended_total", "Jobs whose end was stored, by final state."),
            labels: [("state", state.rawValue)])
    }

    private func callbacks(_ outcome: CallbackOutcome) -> Counter {
        registry.makeCounter(
            descriptor: Self.name("callbacks_total", "Callbacks finished, by outcome (after all their retries)."),
            labels: [("outcome", outcome.rawValue)])
    }

    private func output(_ stream: OutputStreamKind) -> Counter {
        registry.makeCounter(
            descriptor: Self.name("output_bytes_stored_total", "Bytes of job output the hub stored, by stream."),
            labels: [("stream", stream.name)])
    }

    private static func name(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "xn", metricName: name, unitName: "", helpText: help)
    }
}
