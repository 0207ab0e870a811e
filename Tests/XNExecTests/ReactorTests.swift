import Foundation
import Testing
import XNExec
import XNProtocol

/// The executor's one reactor thread serves every process: many run at once without a thread each,
/// and one whose output nobody reads stops only itself.
@Suite("JobExecutor: one reactor for every process")
struct ReactorTests {
    @Test("many processes run at once without a thread each")
    func noThreadPerProcess() async throws {
        let executor = PipeExecutor()
        let before = Self.threadCount()
        let count = 64
        let processes = try (0..<count).map { _ in
            try executor.start(TestTask.request("sleep", "30", keepsInputOpen: true))
        }
        defer {
            for process in processes { process.signal(SIGKILL) }
        }
        let collectors = processes.map { OutputCollector($0) }
        #expect(await eventually { processes.allSatisfy { Self.isRunning($0.pid) } })
        let during = Self.threadCount()
        // A thread per process would add 64; the cooperative pool and test tasks add a few at most.
        #expect(during - before < 16, "threads before: \(before), with \(count) processes running: \(during)")
        for process in processes { process.signal(SIGKILL) }
        for process in processes {
            let result = await process.result(timeout: .seconds(10))
            #expect(result?.termination == .signaled(SIGKILL))
        }
        #expect(collectors.allSatisfy { $0.text(.stdout).isEmpty })
    }

    @Test("a process whose output nobody reads holds back only itself")
    func stalledProcessHoldsOnlyItself() async throws {
        let executor = PipeExecutor()
        let count = 16 << 20
        let unread = try executor.start(TestTask.request("bytes", "\(count)", "4", outputLimit: count))
        // Its pipe is full: the reactor stopped reading it for want of credits.
        #expect(
            await eventually {
                let wchan = (try? String(contentsOfFile: "/proc/\(unread.pid)/wchan", encoding: .utf8)) ?? ""
                return wchan.contains("pipe_write")
            })
        for index in 0..<20 {
            let process = try executor.start(TestTask.request("echo", "job \(index)"))
            let collector = OutputCollector(process)
            let result = await process.result(timeout: .seconds(10))
            #expect(result?.termination == .exited(0), "job \(index) did not end while another was stalled")
            #expect(await eventually { collector.text(.stdout) == "job \(index)\n" })
        }
        #expect(await unread.result(timeout: .milliseconds(50)) == nil)
        var bytes: [UInt8] = []
        for await chunk in unread.output {
            bytes += chunk.bytes
        }
        #expect(bytes == generatedBytes(count: count, seed: 4))
        #expect(await unread.result(timeout: .seconds(10))?.termination == .exited(0))
    }

    @Test("output of many processes at once arrives whole and unmixed")
    func concurrentOutput() async throws {
        let executor = PipeExecutor()
        let size = 3 << 20
        try await withThrowingTaskGroup(of: (Int, [UInt8], ProcessTermination?).self) { group in
            for seed in 1...8 {
                group.addTask {
                    let process = try executor.start(TestTask.request("bytes", "\(size)", "\(seed)"))
                    var bytes: [UInt8] = []
                    for await chunk in process.output {
                        bytes += chunk.bytes
                    }
                    return (seed, bytes, await process.result(timeout: .seconds(10))?.termination)
                }
            }
            for try await (seed, bytes, termination) in group {
                #expect(termination == .exited(0))
                #expect(bytes == generatedBytes(count: size, seed: UInt64(seed)), "the output of seed \(seed)")
            }
        }
    }

    @Test("every descriptor of a process is closed once it ended, however its input ended")
    func noDescriptorLeaks() async throws {
        let executor = PipeExecutor()
        let before = Self.openDescriptors()
        let input = generatedBytes(count: 200_000, seed: 9)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                // Initial input larger than a pipe holds, then stdin closes by itself.
                group.addTask {
                    let finished = try await run(executor, TestTask.request("cat", standardInput: input))
                    #expect(finished.bytes(.stdout) == input)
                }
                // Live input, closed by the caller.
                group.addTask {
                    let process = try executor.start(TestTask.request("cat", keepsInputOpen: true))
                    let collector = OutputCollector(process)
                    try process.send(Array("live\n".utf8))
                    process.closeInput()
                    #expect(await process.result(timeout: .seconds(10))?.termination == .exited(0))
                    #expect(await eventually { collector.text(.stdout) == "live\n" })
                }
                // Live input never closed: the process ends on its own.
                group.addTask {
                    let finished = try await run(executor, TestTask.request("echo", "done", keepsInputOpen: true))
                    #expect(finished.stdout == "done\n")
                }
                // A terminal, ended by Ctrl-D.
                group.addTask {
                    var request = TestTask.request("cat")
                    request.terminal = TerminalSize(rows: 24, columns: 80)
                    let process = try executor.start(request)
                    let collector = OutputCollector(process)
                    try process.send(Array("typed\n".utf8))
                    #expect(await eventually { collector.text(.stdout).contains("typed") })
                    process.closeInput()
                    #expect(await process.result(timeout: .seconds(10))?.termination == .exited(0))
                }
                // Killed while it waits for input.
                group.addTask {
                    let process = try executor.start(TestTask.request("sleep", "30", keepsInputOpen: true))
                    let collector = OutputCollector(process)
                    process.signal(SIGKILL)
                    #expect(await process.result(timeout: .seconds(10))?.termination == .signaled(SIGKILL))
                    #expect(throws: InputError.closed) { try process.send([1]) }
                    _ = collector
                }
            }
            try await group.waitForAll()
        }
        // Ended processes give their descriptors back (some after their end is reported).
        #expect(
            await eventually { Self.openDescriptors() <= before },
            "descriptors open before: \(before), after: \(Self.openDescriptors())")
    }

    private static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }

    private static func threadCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
    }

    /// Whether `pid` runs (or sleeps), not a zombie or gone.
    private static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.range(of: ") ", options: .backwards)
        else { return false }
        return !stat[end.upperBound...].hasPrefix("Z")
    }
}
