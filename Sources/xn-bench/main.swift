import CXNSystem
import Foundation

/// xn-bench: the hub measured beside the machine's own floor, in one run.
///
/// Usage: `swift run -c release xn-bench [--quick] [--profile sequential|concurrent|store N]`. `--quick`
/// shrinks every loop (smoke run); `--profile` runs one scenario alone, N jobs, under a profiler;
/// `--startup N` times N whole client processes only (`XN_BENCH_XN` picks the `xn` to time);
/// `--cgroups` gives every job of the hub's slots and the worker a cgroup, as `xn hub` does as root;
/// `--isolate` runs every job of theirs in a bubblewrap sandbox, as `xn hub --isolate` does;
/// `--wrk N [SECONDS]` seeds N finished jobs, starts `xn hub` on them and loads it with wrk;
/// `--wrk-submit [SECONDS]` loads an `xn hub` with `?wait` submissions from wrk (with and without
/// a cgroup per job) and reports jobs/s and the hub's CPU per job;
/// `--processes MIB` moves a job's MIB of output through `xn hub`, `xn worker` and `xn attach`
/// processes and reports each one's peak memory; `--profile http N` times HTTP round trips alone
/// (`GET /healthz`) beside sequential jobs, through AsyncHTTPClient and through a blocking socket.
let quick = CommandLine.arguments.contains("--quick")
// As `xn hub` and `xn worker` do (HeapTuning.swift): the hub's memory and speed are measured as
// they run.
_ = xn_tune_heap(4 << 20, 4 << 20)
if let flag = CommandLine.arguments.firstIndex(of: "--wrk") {
    let rest = CommandLine.arguments.dropFirst(flag + 1)
    guard let jobs = rest.first.flatMap({ Int($0) }), jobs > 0 else {
        print("usage: xn-bench --wrk JOBS [SECONDS]")
        exit(2)
    }
    try await WrkBench.run(jobs: jobs, seconds: rest.dropFirst().first.flatMap { Int($0) } ?? 10)
    exit(0)
}
if let flag = CommandLine.arguments.firstIndex(of: "--wrk-submit") {
    let seconds = CommandLine.arguments.dropFirst(flag + 1).first.flatMap { Int($0) } ?? 10
    try await SubmitWrkBench.run(seconds: seconds)
    exit(0)
}
if let flag = CommandLine.arguments.firstIndex(of: "--processes") {
    guard let mebibytes = CommandLine.arguments.dropFirst(flag + 1).first.flatMap({ Int($0) }), mebibytes > 0 else {
        print("usage: xn-bench --processes MIB")
        exit(2)
    }
    try await ProcessBench.run(mebibytes: mebibytes)
    exit(0)
}
if let flag = CommandLine.arguments.firstIndex(of: "--startup") {
    let runs = CommandLine.arguments.dropFirst(flag + 1).first.flatMap { Int($0) } ?? 20
    let hub = try await BenchHub.start(slots: ProcessInfo.processInfo.activeProcessorCount)
    let startup = try StartupBench.measure(hub: hub, runs: runs)
    await hub.stop()
    print("\(StartupBench.xn), \(runs) runs each, p50 / p99:")
    print("  xn --version      \(us(startup.version.p50)) / \(us(startup.version.p99))")
    print("  xn run -- true    \(us(startup.run.p50)) / \(us(startup.run.p99))")
    if let curl = startup.curl {
        print("  curl POST ?wait   \(us(curl.p50)) / \(us(curl.p99))")
        print(String(format: "  ratio (p50)       %.2f×", startup.run.p50 / curl.p50))
    }
    exit(0)
}
if let flag = CommandLine.arguments.firstIndex(of: "--profile") {
    let rest = Array(CommandLine.arguments.dropFirst(flag + 1))
    let profiles = [
        "sequential", "concurrent", "ingest", "attach", "echo", "echo-worker", "executor", "store", "http", "handoff",
    ]
    guard rest.count == 2, let jobs = Int(rest[1]), profiles.contains(rest[0]) else {
        print(
            "usage: xn-bench --profile sequential|concurrent|echo|echo-worker|executor|store|http|handoff N, or --profile ingest|attach MIB"
        )
        exit(2)
    }
    if rest[0] == "attach" {
        let hub = try await BenchHub.start(slots: ProcessInfo.processInfo.activeProcessorCount, maxOutput: 1 << 40)
        let rate = try await AttachBench.outputRate(hub, bytes: jobs << 20)
        await hub.stop()
        print("attach: \(mbps(rate)) for \(jobs) MiB to an attached client")
        exit(0)
    }
    if rest[0] == "store" {
        let sample = try await StoreBench.startAndEnd(iterations: jobs)
        print(
            "store insert running + end: p50 \(us(sample.p50)), p99 \(us(sample.p99)), \(rate(sample.rate)) over \(jobs) jobs"
        )
        exit(0)
    }
    if rest[0] == "executor" {
        let raw = RawSpawn.loop(iterations: jobs)
        let sample = await RawSpawn.executorLoop(iterations: jobs)
        print(
            "executor start+result /bin/true: p50 \(us(sample.p50)), p99 \(us(sample.p99)); raw spawn p50 \(us(raw.p50))"
        )
        exit(0)
    }
    if rest[0] == "echo-worker" {
        let sample = try await AttachBench.throughWorker(iterations: jobs)
        let floor = try await AttachBench.localPTY(iterations: jobs)
        print(
            "echo through attach and a worker: p50 \(us(sample.p50)), p99 \(us(sample.p99)) over \(jobs) keys; local pty p50 \(us(floor.p50)), p99 \(us(floor.p99))"
        )
        exit(0)
    }
    if rest[0] == "echo" {
        let hub = try await BenchHub.start(slots: 1)
        let sample = try await AttachBench.throughHub(hub, iterations: jobs)
        await hub.stop()
        let floor = try await AttachBench.localPTY(iterations: jobs)
        print(
            "echo through attach: p50 \(us(sample.p50)), p99 \(us(sample.p99)) over \(jobs) keys; local pty p50 \(us(floor.p50)), p99 \(us(floor.p99))"
        )
        exit(0)
    }
    if rest[0] == "handoff" {
        let thread = try HandOff.threadRoundTrip(iterations: jobs)
        let loopback = try HandOff.loopbackRoundTrip(iterations: jobs)
        print("round trips over \(jobs) each, p50 / p99:")
        print("  a thread waking another and back (pipes)   \(us(thread.p50)) / \(us(thread.p99))")
        print("  a byte over loopback TCP and back             \(us(loopback.p50)) / \(us(loopback.p99))")
        exit(0)
    }
    if rest[0] == "http" {
        let hub = try await BenchHub.start(slots: ProcessInfo.processInfo.activeProcessorCount)
        let floors = try await hub.httpFloors(iterations: jobs)
        await hub.stop()
        print("over \(jobs) requests each, p50 / p99:")
        print("  GET /healthz, AsyncHTTPClient              \(us(floors.health.p50)) / \(us(floors.health.p99))")
        print(
            "  GET /healthz, blocking socket              \(us(floors.plainHealth.p50)) / \(us(floors.plainHealth.p99))"
        )
        print("  POST ?wait /bin/true, AsyncHTTPClient      \(us(floors.job.p50)) / \(us(floors.job.p99))")
        print("  POST ?wait /bin/true, blocking socket      \(us(floors.plainJob.p50)) / \(us(floors.plainJob.p99))")
        exit(0)
    }
    if rest[0] == "ingest" {
        let hub = try await BenchHub.start(slots: 0, maxOutput: 1 << 40)
        let worker = BenchWorker(hub: hub.url, slots: 1)
        try await hub.waitForWorkers(1)
        let rate = try await hub.ingest(bytes: jobs << 20)
        await worker.stop()
        await hub.stop()
        print("ingest: \(mbps(rate)) for \(jobs) MiB")
        exit(0)
    }
    let hub = try await BenchHub.start(slots: ProcessInfo.processInfo.activeProcessorCount)
    let sample =
        rest[0] == "sequential"
        ? try await hub.sequentialLatency(iterations: jobs) : try await hub.throughput(submitters: 32, jobs: jobs)
    await hub.stop()
    print("\(rest[0]): p50 \(us(sample.p50)), p99 \(us(sample.p99)), \(rate(sample.rate)) over \(jobs) jobs")
    exit(0)
}
let cores = ProcessInfo.processInfo.activeProcessorCount
let scale = quick ? 0.1 : 1.0

func count(_ n: Int) -> Int { max(20, Int(Double(n) * scale)) }

print("xn-bench: \(cores) core(s)\(quick ? ", quick run" : ""); \(benchCgroupsBanner)")

let rawOne = RawSpawn.loop(iterations: count(2000))
let rawPerCore = RawSpawn.parallel(threads: cores, iterationsEach: count(2000))
let executor = await RawSpawn.executorLoop(iterations: count(2000))

let hub = try await BenchHub.start(slots: cores)
let sequential = try await hub.sequentialLatency(iterations: count(2000))
let concurrent16 = try await hub.throughput(submitters: 16, jobs: count(4000))
let concurrent32 = try await hub.throughput(submitters: 32, jobs: count(4000))
await hub.stop()

// Remote: a hub that runs nothing itself and one worker on loopback.
let remoteHub = try await BenchHub.start(slots: 0, maxOutput: 1 << 30)
let remoteWorker = BenchWorker(hub: remoteHub.url, slots: cores)
try await remoteHub.waitForWorkers(1)
let remoteSequential = try await remoteHub.sequentialLatency(iterations: count(1000))
let remote32 = try await remoteHub.throughput(submitters: 32, jobs: count(3000))
let ingestBytes = quick ? 64 << 20 : 1 << 30
let ingest = try await remoteHub.ingest(bytes: ingestBytes)
await remoteWorker.stop()
await remoteHub.stop()
let rawPipe = RawPipe.throughput(bytes: ingestBytes)

// Attach: keystroke echo through the hub (its own slot, then a worker) beside a local pty, and
// the rate an attached client receives a big output at.
let keys = count(3000)
let ptyEcho = try await AttachBench.localPTY(iterations: keys)
let threadTrip = try HandOff.threadRoundTrip(iterations: count(10_000))
let loopbackTrip = try HandOff.loopbackRoundTrip(iterations: count(10_000))
let attachHub = try await BenchHub.start(slots: cores, maxOutput: 1 << 30)
let hubEcho = try await AttachBench.throughHub(attachHub, iterations: keys)
let attachedBytes = quick ? 64 << 20 : 1 << 30
let attachedRate = try await AttachBench.outputRate(attachHub, bytes: attachedBytes)
await attachHub.stop()
let workerEcho = try await AttachBench.throughWorker(iterations: keys)

let startupHub = try await BenchHub.start(slots: cores)
let startup = try StartupBench.measure(hub: startupHub, runs: 20)
await startupHub.stop()

let lookupHub = try await BenchHub.start(slots: cores, preloadFinishedJobs: quick ? 10_000 : 100_000)
let lookups = try await lookupHub.lookupRate(concurrency: 16, requests: count(40_000))
await lookupHub.stop()

// Targets: issue 11 (the fast path), as ratios to the floors measured beside them.
var table = Table(header: ["measure", "value", "floor (same run)", "ratio", "target"])
table.add("raw posix_spawn+waitpid /bin/true, 1 loop", "\(us(rawOne.p50)) p50, \(rate(rawOne.rate))", "-", "-", "-")
table.add("raw spawn, \(cores) loops (1 per core)", rate(rawPerCore), "-", "-", "-")
table.add(
    "JobExecutor start+result /bin/true", "\(us(executor.p50)) p50", us(rawOne.p50),
    "+\(us(executor.p50 - rawOne.p50))", "-")
table.add(
    "submit→exit /bin/true, sequential p50", us(sequential.p50), us(rawOne.p50),
    "+\(us(sequential.p50 - rawOne.p50))", "≤ +500 µs")
table.add("submit→exit /bin/true, sequential p99", us(sequential.p99), us(rawOne.p99), "-", "-")
table.add(
    "completed jobs/s, 16 submitters", rate(concurrent16.rate), rate(rawPerCore),
    percent(concurrent16.rate / rawPerCore), "≥ 60%")
table.add("  latency p50 / p99", "\(us(concurrent16.p50)) / \(us(concurrent16.p99))", "-", "-", "-")
table.add(
    "completed jobs/s, 32 submitters", rate(concurrent32.rate), rate(rawPerCore),
    percent(concurrent32.rate / rawPerCore), "≥ 60%")
table.add("  latency p50 / p99", "\(us(concurrent32.p50)) / \(us(concurrent32.p99))", "-", "-", "-")
table.add(
    "remote: submit→exit /bin/true, sequential p50", us(remoteSequential.p50), us(rawOne.p50),
    "+\(us(remoteSequential.p50 - rawOne.p50))", "≤ +800 µs")
table.add("remote: submit→exit p99", us(remoteSequential.p99), "-", "-", "-")
table.add(
    "remote: completed jobs/s, 32 submitters", rate(remote32.rate), rate(rawPerCore),
    percent(remote32.rate / rawPerCore), "≥ 50%")
table.add(
    "remote: output ingest, \(ingestBytes >> 20) MiB job", mbps(ingest), mbps(rawPipe) + " (raw pipe)",
    percent(ingest / rawPipe), "≥ 25%")
table.add("floor: a thread waking another and back (pipes), p50", us(threadTrip.p50), "-", "-", "-")
table.add("floor: a byte over loopback TCP and back, p50", us(loopbackTrip.p50), "-", "-", "-")
table.add(
    "attach: key echo, hub slot, p50 / p99", "\(us(hubEcho.p50)) / \(us(hubEcho.p99))",
    "\(us(ptyEcho.p50)) / \(us(ptyEcho.p99)) (local pty)", "+\(us(hubEcho.p50 - ptyEcho.p50))", "≤ +120 µs, p99 ≤ 1 ms")
table.add(
    "attach: key echo, via worker, p50 / p99", "\(us(workerEcho.p50)) / \(us(workerEcho.p99))",
    "\(us(ptyEcho.p50)) / \(us(ptyEcho.p99)) (local pty)", "+\(us(workerEcho.p50 - ptyEcho.p50))",
    "≤ +220 µs, p99 ≤ 1 ms")
table.add(
    "attach: \(attachedBytes >> 20) MiB job to an attached client", mbps(attachedRate), mbps(rawPipe) + " (raw pipe)",
    percent(attachedRate / rawPipe), "≥ 25%")
table.add("client: xn --version, whole process p50", us(startup.version.p50), "-", "-", "-")
table.add(
    "client: xn run -- true, whole process p50", us(startup.run.p50),
    startup.curl.map { us($0.p50) + " (curl POST ?wait)" } ?? "no curl",
    startup.curl.map { String(format: "%.1f×", startup.run.p50 / $0.p50) } ?? "-", "≤ 2×")
table.add(
    "GET /<id> with \(lookups.stored) jobs stored, 16 clients", rate(lookups.rate),
    "-", "p50 \(us(lookups.p50))", "≥ 10,000/s")
table.print()
