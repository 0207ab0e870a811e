import Foundation
import Glibc
import Testing
import XNExec

/// Isolated jobs on a real hub and worker: they cannot read the runner's data folder, cannot
/// reach the hub's port, and leave nothing in /tmp; a token can force isolation on its jobs.
/// Jobs run as root here (`--allow-root`), so only the sandbox keeps them out of the data folder.
@Suite(
    .timeLimit(.minutes(2)), .enabled(if: geteuid() == 0, "jobs as root"),
    .enabled(if: (try? Sandbox.discover(hiding: []).get()) != nil, "needs bubblewrap"))
struct JobIsolationTests {
    /// A folder outside /tmp (inside it the sandbox's own /tmp would hide it anyway, and the test
    /// would prove nothing): in the build folder, or the home folder when the checkout is in /tmp.
    static func folderOutsideTmp() throws -> String {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let sandbox = try Sandbox.discover(hiding: []).get()
        let base = sandbox.shows(repo) ? repo + "/.build" : NSHomeDirectory() + "/.cache"
        let folder = base + "/xn-isolation-test-\(UUID().uuidString)"
        try #require(sandbox.shows(folder))
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    /// A job that says "connected" when it reaches 127.0.0.1:`port` (bash's /dev/tcp: bash is in
    /// /usr, which every sandbox shows).
    static func connect(_ port: String, network: Bool) -> String {
        #"{"command":"bash","args":["-c","echo > /dev/tcp/127.0.0.1/\#(port) && echo connected"]"#
            + (network ? #","network":true}"# : "}")
    }

    static func port(of hub: HubProcess) -> String {
        String(hub.url.split(separator: ":").last ?? "")
    }

    /// What an isolated job must not manage: read `data`, reach `port`, leave `/tmp/<name>`.
    static func probe(data: String, port: String, name: String) -> String {
        let script = """
            ls -A \(data); cat \(data)/xn.sqlite > /dev/null 2>&1 && echo read the data || echo no data; \
            bash -c 'echo > /dev/tcp/127.0.0.1/\(port)' 2>&1 | grep -m1 -o 'Connection refused' || echo reached the hub; \
            echo left > /tmp/\(name) && ls /tmp
            """
        let quoted = script.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return #"{"command":"sh","args":["-c",""# + quoted + #""]"#
    }

    @Test func anIsolatingHubHidesItsDataItsPortAndKeepsNoTmp() async throws {
        let folder = try Self.folderOutsideTmp()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let data = folder + "/data"
        let hub = try await HubProcess.start(data: data, ["--isolate"])
        defer { hub.killNow() }
        #expect(hub.child.stdoutText.contains("every job isolated (bubblewrap)"), "\(hub.child.stdoutText)")
        let name = "xn-isolated-\(UUID().uuidString)"
        let job = try await hub.submit(Self.probe(data: data, port: Self.port(of: hub), name: name) + "}")
        let ended = try await hub.ended(job)
        #expect(ended["stdout"] as? String == "no data\nConnection refused\n\(name)\n", "\(ended)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/\(name)"))
        // A job that asks for the network keeps it (no token here to forbid it).
        let online = try await hub.submit(Self.connect(Self.port(of: hub), network: true))
        #expect(try await hub.ended(online)["stdout"] as? String == "connected\n")
    }

    @Test func aTokenForcesIsolationOnItsJobsAndDecidesTheirNetwork() async throws {
        let folder = try Self.folderOutsideTmp()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let data = folder + "/data"
        let hub = try await HubProcess.start(data: data)
        defer { hub.killNow() }
        #expect(hub.child.stdoutText.contains("jobs may ask to be isolated (bubblewrap)"), "\(hub.child.stdoutText)")
        let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
        let boxed = try await hub.createToken(#"{"name":"boxed","role":"submit","isolate":true}"#, as: admin)
        let online = try await hub.createToken(
            #"{"name":"boxed-online","role":"submit","isolate":true,"allow_network":true}"#, as: admin)
        let plain = try await hub.createToken(#"{"name":"plain","role":"submit"}"#, as: admin)
        for (body, field) in [
            (#"{"name":"r","role":"read","isolate":true}"#, "isolate"),
            (#"{"name":"s","role":"submit","allow_network":true}"#, "allow_network"),
            (#"{"name":"t","role":"submit","isolate":"yes"}"#, "isolate"),
        ] {
            let refused = try await request(
                .POST, hub.url + "/v1/tokens", body: body, headers: [("Authorization", "Bearer \(admin)")])
            #expect(refused.status == 400 && refused.text.contains(#""field":"\#(field)""#), "\(body): \(refused.text)")
        }
        let port = Self.port(of: hub)
        let name = "xn-forced-\(UUID().uuidString)"

        let forced = try await hub.submit(Self.probe(data: data, port: port, name: name) + "}", token: boxed)
        let ended = try await Self.ended(forced, on: hub, token: admin)
        #expect(ended["stdout"] as? String == "no data\nConnection refused\n\(name)\n", "\(ended)")
        #expect(ended["isolate"] as? Bool == true, "the view says the job ran isolated")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/\(name)"))
        let shown = try await runXN(["show", forced], hub: hub.url, environment: ["XN_TOKEN": admin])
        let line = shown.stdout.split(separator: "\n").first { $0.hasPrefix("isolated:") }
        #expect(line?.hasSuffix(" yes, no network") == true, "\(shown.stdout)")

        let asked = Self.connect(port, network: true)
        let refused = try await request(
            .POST, hub.url + "/v1/jobs", body: asked, headers: [("Authorization", "Bearer \(boxed)")])
        #expect(refused.status == 403)
        #expect(refused.text.contains("network_not_allowed"), "\(refused.text)")
        let allowed = try await hub.submit(asked, token: online)
        #expect(try await Self.ended(allowed, on: hub, token: admin)["stdout"] as? String == "connected\n")

        // A token that does not force it: its job is not isolated and reads what root may.
        let open = try await hub.submit(Self.probe(data: data, port: port, name: name) + "}", token: plain)
        let openEnd = try await Self.ended(open, on: hub, token: admin)
        #expect((openEnd["stdout"] as? String ?? "").contains("read the data"), "\(openEnd)")
        try? FileManager.default.removeItem(atPath: "/tmp/\(name)")

        let tokens = try await request(.GET, hub.url + "/v1/tokens", headers: [("Authorization", "Bearer \(admin)")])
        let views = try tokens.object()["tokens"] as? [[String: Any]] ?? []
        let view = views.first { $0["name"] as? String == "boxed-online" }
        #expect(view?["isolate"] as? Bool == true && view?["allow_network"] as? Bool == true, "\(views)")
    }

    @Test func anIsolatingWorkerHidesItsSpool() async throws {
        let hub = try await HubProcess.start(data: try temporaryFolder(), ["--no-local"])
        defer { hub.killNow() }
        let folder = try Self.folderOutsideTmp()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let spool = folder + "/spool"
        let worker = try WorkerFailureTests.workerProcess(
            hub.url, name: "boxed", ["--isolate", "--spool", spool, "--labels", "boxed=1"])
        defer { worker.signal(SIGKILL) }
        try await eventually("worker banner") {
            worker.stdoutText.contains("every job isolated (bubblewrap)") ? true : nil
        }
        let name = "xn-worker-\(UUID().uuidString)"
        let probe = Self.probe(data: spool, port: Self.port(of: hub), name: name)
        let job = try await hub.submit(probe + #","labels":{"boxed":"1"}}"#)
        let ended = try await hub.ended(job, timeout: .seconds(30))
        #expect(ended["stdout"] as? String == "no data\nConnection refused\n\(name)\n", "\(ended)")
        #expect(ended["worker"] as? String == "boxed")
    }

    /// The v1 job once it has ended, read with `token`.
    static func ended(_ id: String, on hub: HubProcess, token: String) async throws -> [String: Any] {
        try await eventually("job \(id) to end", timeout: .seconds(20)) {
            let job = try await request(
                .GET, hub.url + "/v1/jobs/\(id)?wait=2", headers: [("Authorization", "Bearer \(token)")]
            ).object()
            let state = job["state"] as? String ?? ""
            return ["succeeded", "failed", "canceled", "timed_out", "lost"].contains(state) ? job : nil
        }
    }
}
