import Foundation
import Logging
import XNExec
import XNWorker

/// A real worker in this process, connected to a test hub over loopback.
final class TestWorker: Sendable {
    let name: String
    private let worker: Worker
    private let task: Task<Void, any Error>

    private init(name: String, worker: Worker, task: Task<Void, any Error>) {
        self.name = name
        self.worker = worker
        self.task = task
    }

    static func start(
        hub: String, name: String, labels: [String: String] = [:], slots: Int = 2,
        _ configure: (inout WorkerConfiguration) -> Void = { _ in }
    ) throws -> TestWorker {
        var configuration = WorkerConfiguration(
            hub: hub, name: name, spoolDirectory: try temporaryFolder() + "/spool")
        configuration.labels = labels
        configuration.slots = slots
        configuration.drainGrace = .seconds(5)
        configuration.killGrace = .milliseconds(500)
        configure(&configuration)
        let logger = Logger(label: "test.worker") { _ in SwiftLogNoOpLogHandler() }
        let worker = Worker(configuration: configuration, executor: PipeExecutor(), logger: logger)
        let task = Task { try await worker.run() }
        return TestWorker(name: name, worker: worker, task: task)
    }

    /// Drains the worker (as on SIGTERM) and waits for it to stop.
    func stop() async {
        await worker.drain()
        _ = try? await withDeadline(.seconds(30)) { try? await self.task.value }
    }
}

extension TestHub {
    /// Waits until the named workers are connected.
    func waitForWorkers(_ names: Set<String>) async throws {
        try await eventually("workers \(names) connected") { () -> Bool? in
            let list = try await get("/v1/workers").object()["workers"] as? [[String: Any]] ?? []
            return names.isSubset(of: Set(list.compactMap { $0["name"] as? String })) ? true : nil
        }
    }
}
