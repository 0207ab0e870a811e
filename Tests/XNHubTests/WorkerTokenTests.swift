import Foundation
import Glibc
import HTTPTypes
import Testing

/// A worker token names its worker, the labels and the slots it may announce; revoking a token
/// ends the sessions it opened.
@Suite(.timeLimit(.minutes(2)))
struct WorkerTokenTests {
    @Test func aWorkerTokenGrantsOneNameItsLabelsAndItsSlots() async throws {
        try await withHub({ $0.slots = 0 }) { hub in
            let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
            let gpu = try await hub.createToken(
                #"{"name":"gpu-1","role":"worker","labels":{"gpu":"1"},"slots":4}"#, as: admin)
            // Claims beyond the token: each refused with its reason, and the worker stops for good.
            let claims: [(name: String, labels: String, slots: String, reason: String)] = [
                ("gpu-2", "gpu=1", "2", "its token 'gpu-1' is for the worker named 'gpu-1', not 'gpu-2'"),
                ("gpu-1", "gpu=2", "2", "its token 'gpu-1' does not grant the label gpu=2 (it grants gpu=1)"),
                ("gpu-1", "gpu=1,zone=eu", "2", "its token 'gpu-1' does not grant the label zone=eu"),
                ("gpu-1", "gpu=1", "8", "its token 'gpu-1' grants at most 4 slot(s), not 8"),
            ]
            for claim in claims {
                let worker = try ChildProcess(
                    Binaries.xn,
                    [
                        "worker", "--hub", hub.url, "--name", claim.name, "--labels", claim.labels, "--slots",
                        claim.slots, "--token", gpu,
                    ])
                defer { worker.signal(SIGKILL) }
                #expect(try await worker.exitStatus() != 0, "\(claim)")
                #expect(worker.stderrText.contains(claim.reason), "\(claim): \(worker.stderrText)")
            }
            let workers =
                try await request(
                    .GET, hub.url + "/v1/workers", headers: [("Authorization", "Bearer \(admin)")]
                ).object()["workers"] as? [Any]
            #expect(workers?.isEmpty == true, "no refused worker was listed: \(workers ?? [])")

            // What the token grants, and less: connected.
            let granted = try ChildProcess(
                Binaries.xn,
                ["worker", "--hub", hub.url, "--name", "gpu-1", "--labels", "gpu=1", "--slots", "4", "--token", gpu])
            defer { granted.signal(SIGKILL) }
            try await eventually("gpu-1 connected") { () -> Bool? in
                let result = try await request(
                    .GET, hub.url + "/v1/workers", headers: [("Authorization", "Bearer \(admin)")])
                let list = try result.object()["workers"] as? [[String: Any]] ?? []
                return list.contains { $0["name"] as? String == "gpu-1" && $0["slots"] as? Int == 4 } ? true : nil
            }
            // Another token may not take its name, nor bump it off.
            let intruder = try ChildProcess(
                Binaries.xn, ["worker", "--hub", hub.url, "--name", "gpu-1", "--labels", "gpu=1", "--token", admin])
            defer { intruder.signal(SIGKILL) }
            try await eventually("the intruder is told why") {
                intruder.stderrText.contains("a worker named 'gpu-1' is already connected under another token")
                    ? true : nil
            }
            let job = try await hub.submit(#"{"command":"echo","args":["on gpu"],"labels":{"gpu":"1"}}"#, token: admin)
            let ended = try await eventually("the gpu job ends") { () -> [String: Any]? in
                let view = try await request(
                    .GET, hub.url + "/v1/jobs/\(job)?wait=2", headers: [("Authorization", "Bearer \(admin)")]
                ).object()
                return view["state"] as? String == "succeeded" ? view : nil
            }
            #expect(ended["stdout"] as? String == "on gpu\n")
            #expect(granted.process.isRunning, "the first connection stayed")
            // A token's worker terms are checked when it is made.
            let submitSlots = try await request(
                .POST, hub.url + "/v1/tokens", body: #"{"name":"s","role":"submit","slots":2}"#,
                headers: [("Authorization", "Bearer \(admin)")])
            #expect(submitSlots.status == 400)
            #expect(submitSlots.text.contains("slots applies to worker tokens only"))
            let listed = try await runXN(["token", "list", "--hub", hub.url, "--token", admin])
            #expect(listed.stdout.contains("slots 4"), "\(listed.stdout)")
        }
    }

    @Test func revokingATokenEndsTheAttachAndWorkerSessionsItOpened() async throws {
        try await withHub({ $0.slots = 1 }) { hub in
            let admin = try await hub.createToken(#"{"name":"root","role":"admin"}"#, as: nil)
            let typist = try await hub.createToken(#"{"name":"typist","role":"submit"}"#, as: admin)
            let workerToken = try await hub.createToken(#"{"name":"w-rev","role":"worker"}"#, as: admin)
            let worker = try ChildProcess(
                Binaries.xn, ["worker", "--hub", hub.url, "--name", "w-rev", "--token", workerToken])
            defer { worker.signal(SIGKILL) }
            let adminHeader = [("Authorization", "Bearer \(admin)")]
            func workerNames() async throws -> [String] {
                let list = try await request(.GET, hub.url + "/v1/workers", headers: adminHeader).object()["workers"]
                return (list as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            }
            try await eventually("w-rev connected") { try await workerNames().contains("w-rev") ? true : nil }

            let id = try await hub.submit(#"{"command":"cat","interactive":true}"#, token: typist)
            let seen = try await attach(hub, id, token: typist) { outbound, seen in
                try await outbound.write(.binary(.init(string: "before\n")))
                try await seen.waitFor("before")
                let revoked = try await request(.DELETE, hub.url + "/v1/tokens/typist", headers: adminHeader)
                #expect(revoked.status == 200)
                try await seen.waitForError("token 'typist' was revoked")
                try await seen.waitForClose()
            }
            #expect(seen.exit == nil, "the job goes on; only the session ended")
            #expect(
                try await request(.GET, hub.url + "/v1/jobs/\(id)", headers: adminHeader).object()["state"]
                    as? String == "running")

            let revoked = try await request(.DELETE, hub.url + "/v1/tokens/w-rev", headers: adminHeader)
            #expect(revoked.status == 200)
            try await eventually("w-rev gone") { try await workerNames().contains("w-rev") ? nil : true }
            try await eventually("the worker says why") {
                worker.stderrText.contains("the hub closed this link: token 'w-rev' was revoked") ? true : nil
            }
            _ = try await request(.POST, hub.url + "/v1/jobs/\(id)/cancel", headers: adminHeader)
        }
    }
}
