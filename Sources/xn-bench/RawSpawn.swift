import Foundation
import Glibc
import XNExec

/// The floor: what process creation alone costs on this machine.
enum RawSpawn {
    /// posix_spawn + waitpid of /bin/true, one after another.
    static func loop(iterations: Int) -> Sample {
        var durations: [Double] = []
        durations.reserveCapacity(iterations)
        let start = now()
        for _ in 0..<iterations {
            let began = now()
            spawnTrue()
            durations.append(now() - began)
        }
        return Sample(durations: durations, wall: now() - start)
    }

    /// One loop per thread; returns spawns per second across all of them.
    static func parallel(threads: Int, iterationsEach: Int) -> Double {
        let group = DispatchGroup()
        let start = now()
        for _ in 0..<threads {
            group.enter()
            Thread {
                for _ in 0..<iterationsEach { spawnTrue() }
                group.leave()
            }.start()
        }
        group.wait()
        return Double(threads * iterationsEach) / (now() - start)
    }

    /// The same through xn's own executor (pipes, process group, pidfd, the reactor).
    static func executorLoop(iterations: Int) async -> Sample {
        let executor = PipeExecutor()
        var durations: [Double] = []
        let start = now()
        for _ in 0..<iterations {
            let began = now()
            if let process = try? executor.start(ProcessRequest(command: "/bin/true")) {
                for await _ in process.output {}
                _ = await process.result()
            }
            durations.append(now() - began)
        }
        return Sample(durations: durations, wall: now() - start)
    }

    private static func spawnTrue() {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { free(argv[0]) }
        guard posix_spawn(&pid, "/bin/true", nil, nil, argv, environ) == 0 else { return }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}
