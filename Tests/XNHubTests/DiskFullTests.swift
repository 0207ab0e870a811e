import Foundation
import Glibc
import Testing

/// A data folder that fills up ends the job whose output no longer fits, says why, and leaves
/// the hub serving: what it stored stays readable and the next job runs.
@Suite(.serialized)
struct DiskFullTests {
    /// Starts the hub in a mount namespace of its own with `data` on a tmpfs of `size`: the
    /// mount goes away with the hub, whatever happens to the test.
    static func tmpfsLauncher(_ data: String, size: String) -> [String] {
        [
            "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
            "mount -t tmpfs -o size=\(size),mode=0700 xn-disk-full \"$0\" && exec \"$@\"", data,
        ]
    }

    @Test(
        "output that no longer fits in the data folder ends the job with why; the hub keeps serving",
        .enabled(if: geteuid() == 0 && access("/usr/bin/unshare", X_OK) == 0, "mounting a tmpfs needs root"))
    func fullDataFolder() async throws {
        let data = try temporaryFolder() + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let hub = try await HubProcess.start(
            data: data, ["--slots", "1", "--no-cgroups"], launcher: Self.tmpfsLauncher(data, size: "8m"))
        defer { hub.killNow() }

        // 32 MiB of output into an 8 MiB folder.
        let submitted = try await runXN(["submit", "--", "head", "-c", "33554432", "/dev/zero"], hub: hub.url)
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let shown = try await eventually("the job to end", timeout: .seconds(30)) { () -> [String: Any]? in
            let show = try await runXN(["show", id, "--json"], hub: hub.url)
            guard show.status == 0,
                let job = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any],
                let state = job["state"] as? String, !["queued", "assigned", "running"].contains(state)
            else { return nil }
            return job
        }
        #expect(shown["state"] as? String == "failed", "\(shown)")
        let err = shown["err"] as? String ?? ""
        #expect(err.contains("could not store the job's output"), "\(err)")
        #expect(err.contains("No space left on device"), "\(err)")
        // What was stored before the folder filled up is there and readable, byte for byte.
        let kept = shown["stdout_bytes"] as? Int ?? 0
        #expect(kept > 0 && kept < 8 << 20, "\(kept)")
        let logs = try await runXN(["logs", id], hub: hub.url)
        #expect(logs.status == 0 && logs.bytes.count == kept && logs.bytes.allSatisfy { $0 == 0 }, "\(logs.stderr)")

        // The next job that writes more than is left fails the same way, and `xn run` says so
        // (killed: 143, or 1 when its process had already exited 0).
        let next = try await runXN(["run", "--", "head", "-c", "2097152", "/dev/zero"], hub: hub.url)
        #expect(next.status != 0, "\(next.stderr)")
        #expect(next.stderr.contains("could not store the job's output"), "\(next.stderr)")
        #expect(next.stderr.contains("No space left on device"), "\(next.stderr)")
        // The hub keeps serving: room was kept for the job store, so it still takes jobs and
        // records their ends.
        let quiet = try await runXN(["run", "--", "true"], hub: hub.url)
        #expect(quiet.status == 0, "\(quiet.stderr)")
        let list = try await runXN(["list"], hub: hub.url)
        #expect(list.status == 0 && list.stdout.contains(id), "\(list.stderr)")
        #expect(hub.child.process.isRunning)
    }
}
