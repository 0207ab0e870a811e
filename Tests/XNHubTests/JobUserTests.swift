import Foundation
import Glibc
import Testing

/// Started as root, a hub and a worker run jobs as nobody unless told otherwise, and inside the
/// limits they were given.
@Suite(.timeLimit(.minutes(2)), .enabled(if: geteuid() == 0))
struct JobUserTests {
    static func idOfAJob(on hub: HubProcess, _ extra: String = "") async throws -> String {
        let id = try await hub.submit(#"{"command":"id","args":["-u"]\#(extra)}"#)
        let job = try await eventually("id -u ended") { () -> [String: Any]? in
            let job = try await hub.get("/v1/jobs/\(id)").object()
            return ["succeeded", "failed"].contains(job["state"] as? String ?? "") ? job : nil
        }
        return job["stdout"] as? String ?? "?"
    }

    @Test func byDefaultJobsRunAsNobodyAndSaySo() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder(), asRoot: false)
        defer { hub.killNow() }
        #expect(hub.child.stdoutText.contains("jobs run as nobody (uid 65534); --allow-root runs them as root"))
        #expect(try await Self.idOfAJob(on: hub) == "65534\n")
        let rooted = try await HubProcess.start(data: try temporaryFolder())  // --allow-root
        defer { rooted.killNow() }
        #expect(rooted.child.stdoutText.contains("jobs run as root (--allow-root)"))
        #expect(try await Self.idOfAJob(on: rooted) == "0\n")
    }

    @Test func aBareCommandIsFoundOnThePathAsTheJobsUserSeesIt() async throws {
        // First on the PATH: a folder only root may enter, holding a program of the same name.
        let folder = try temporaryFolder()
        let secret = folder + "/secret"
        let open = folder + "/open"
        for (place, mode, says) in [(secret, 0o700, "secret"), (open, 0o755, "open")] {
            try FileManager.default.createDirectory(atPath: place, withIntermediateDirectories: true)
            try "#!/bin/sh\necho \(says)\n".write(toFile: place + "/xn-probe", atomically: true, encoding: .utf8)
            chmod(place + "/xn-probe", 0o755)
            chmod(place, mode_t(mode))
        }
        chmod(folder, 0o755)
        let path = "\(secret):\(open):" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let hub = try await HubProcess.start(data: try temporaryFolder(), asRoot: false, environment: ["PATH": path])
        defer { hub.killNow() }
        let id = try await hub.submit(#"{"command":"xn-probe"}"#)
        let job = try await eventually("xn-probe ended") { () -> [String: Any]? in
            let job = try await hub.get("/v1/jobs/\(id)").object()
            return ["succeeded", "failed"].contains(job["state"] as? String ?? "") ? job : nil
        }
        #expect(job["state"] as? String == "succeeded", "\(job)")
        #expect(job["stdout"] as? String == "open\n")
        // A program nobody may run anywhere on the PATH: the err says who tried.
        chmod(open + "/xn-probe", 0o700)
        let denied = try await hub.submit(#"{"command":"xn-probe"}"#)
        let failed = try await eventually("denied ended") { () -> [String: Any]? in
            let job = try await hub.get("/v1/jobs/\(denied)").object()
            return ["succeeded", "failed"].contains(job["state"] as? String ?? "") ? job : nil
        }
        #expect(failed["err"] as? String == "spawn xn-probe EACCES: Permission denied (as user nobody)")
    }

    @Test func aWorkerRunsItsJobsAsNobodyToo() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder(), ["--no-local"])
        defer { hub.killNow() }
        let worker = try WorkerFailureTests.workerProcess(hub.url, name: "plain", asRoot: false)
        defer { worker.signal(SIGKILL) }
        try await eventually("worker banner") { worker.stdoutText.contains("jobs run as nobody") ? true : nil }
        #expect(try await Self.idOfAJob(on: hub) == "65534\n")
    }

    @Test func hubLimitsApplyToEveryJob() async throws {
        let hub = try await HubProcess.start(
            data: try temporaryFolder(), ["--limit-files", "50", "--limit-cpu", "9", "--limit-memory", "268435456"])
        defer { hub.killNow() }
        let id = try await hub.submit(#"{"command":"sh","args":["-c","ulimit -n; ulimit -t"]}"#)
        let job = try await eventually("ulimit") { () -> [String: Any]? in
            let job = try await hub.get("/v1/jobs/\(id)").object()
            return job["state"] as? String == "succeeded" ? job : nil
        }
        #expect(job["stdout"] as? String == "50\n9\n")
        // 1 GiB written: the job's cgroup holds it to 256 MiB and the OOM killer ends it.
        let hog = try await hub.submit(#"{"command":"python3","args":["-c","x = bytes(range(256)) * (4 << 20)"]}"#)
        let failed = try await eventually("hog") { () -> [String: Any]? in
            let job = try await hub.get("/v1/jobs/\(hog)").object()
            return job["state"] as? String == "failed" ? job : nil
        }
        #expect(failed["err"] as? String == "killed: out of memory (limit 256 MiB)", "\(failed)")
        // The hub keeps serving.
        #expect(try await Self.idOfAJob(on: hub) == "0\n")
    }

    /// The switch to another user happens in a vfork child of a hub busy on many threads: each
    /// job must come out as exactly that user, with none of the hub's groups or descriptors.
    @Test func fiftyJobsAsAnotherUserBesideOutputHeavyJobsEachGetOnlyTheirUser() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder(), ["--slots", "4"], asRoot: false)
        defer { hub.killNow() }
        var heavy: [String] = []
        for seed in 0..<4 {
            heavy.append(
                try await hub.submit(#"{"command":"\#(Binaries.testtask)","args":["bytes","4000000","\#(seed)"]}"#))
        }
        let probe = "id -u; id -g; id -G; exec \(Binaries.testtask) fds"
        var probes: [String] = []
        for _ in 0..<50 {
            probes.append(try await hub.submit(#"{"command":"sh","args":["-c","\#(probe)"]}"#))
        }
        for id in probes {
            let job = try await hub.ended(id, timeout: .seconds(60))
            #expect(job["state"] as? String == "succeeded", "\(job)")
            #expect(
                job["stdout"] as? String == "65534\n65534\n65534\nno descriptors beyond 0-2\n",
                "uid, gid, groups and descriptors of \(id)")
        }
        for id in heavy {
            let job = try await hub.ended(id, timeout: .seconds(60))
            #expect(job["state"] as? String == "succeeded", "\(job)")
            #expect(job["stdout_bytes"] as? Int == 4_000_000, "\(job)")
        }
    }

    @Test func runAsAndAllowRootAreCheckedAtStart() async throws {
        let data = try temporaryFolder()
        let both = try await runXN(["hub", "-p", "0", "--data", data, "--run-as", "nobody", "--allow-root"])
        #expect(both.status == 64)
        #expect(both.stderr.contains("--run-as and --allow-root do not go together"))
        let unknown = try await runXN(["hub", "-p", "0", "--data", data, "--run-as", "no-such-user-xn"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("no user named no-such-user-xn"))
    }
}
