import Foundation
import Glibc
import Logging
import XNExec
import XNWorker

/// A worker on loopback for the benchmark, in this process, on the same code path as `xn worker`.
final class BenchWorker: Sendable {
    private let worker: Worker
    private let task: Task<Void, any Error>
    private let spool = NSTemporaryDirectory() + "xn-bench-spool-\(UUID().uuidString)"

    init(hub: String, slots: Int) {
        var configuration = WorkerConfiguration(hub: hub, name: "bench-worker", spoolDirectory: spool)
        configuration.slots = slots
        configuration.isolatesJobs = benchIsolates
        let logger = Logger(label: "bench.worker") { _ in SwiftLogNoOpLogHandler() }
        let worker = Worker(configuration: configuration, executor: benchExecutor, logger: logger)
        self.worker = worker
        task = Task { try await worker.run() }
    }

    func stop() async {
        await worker.drain()
        _ = try? await task.value
        try? FileManager.default.removeItem(atPath: spool)
    }
}

/// The floor for moving output: a child writing `bytes` of zeros into a pipe this process reads.
enum RawPipe {
    static func throughput(bytes: Int) -> Double {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return 0 }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let argv: [UnsafeMutablePointer<CChar>?] = [
            strdup("head"), strdup("-c"), strdup(String(bytes)), strdup("/dev/zero"), nil,
        ]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let start = now()
        guard posix_spawnp(&pid, "head", &actions, nil, argv, environ) == 0 else { return 0 }
        close(fds[1])
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var total = 0
        while true {
            let got = read(fds[0], buffer, 1 << 20)
            if got <= 0 { break }
            total += got
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        close(fds[0])
        posix_spawn_file_actions_destroy(&actions)
        return Double(total) / (now() - start)
    }
}
