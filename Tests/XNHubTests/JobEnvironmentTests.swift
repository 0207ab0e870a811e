import Foundation
import Glibc
import Testing

/// What a job finds in its environment: a small documented set and its spec's `env`, never the
/// variables the operator exported for the hub (its tokens, the callback secret).
@Suite(.timeLimit(.minutes(2)))
struct JobEnvironmentTests {
    static let hubEnvironment = [
        "XN_TOKEN": "xn_not-for-jobs", "XN_CALLBACK_SECRET": "sign-with-me", "AWS_SECRET_ACCESS_KEY": "hunter2",
        "PASSED_ON": "yes", "LANG": "C.UTF-8", "LC_TIME": "C", "TZ": "UTC",
    ]

    /// The job's environment as the `env` program printed it.
    static func environment(of id: String, on hub: HubProcess) async throws -> [String: String] {
        try await eventually("job \(id) to end") {
            try await hub.get("/v1/jobs/\(id)?wait=5").object()["state"] as? String == "succeeded" ? true : nil
        }
        let printed = try await hub.get("/v1/jobs/\(id)/stdout").text
        var environment: [String: String] = [:]
        for line in printed.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            environment[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return environment
    }

    @Test(arguments: [true, false])
    func aJobSeesItsUserLocaleAndSpecButNoneOfTheHubsSecrets(asRoot: Bool) async throws {
        let hub = try await HubProcess.start(
            data: try temporaryFolder(), ["--pass-env", "PASSED_ON,NOT_SET_ANYWHERE"], asRoot: asRoot,
            environment: Self.hubEnvironment)
        defer { hub.killNow() }
        let id = try await hub.submit(#"{"command":"env","env":{"MINE":"1","LANG":"en_US.UTF-8"}}"#)
        let seen = try await Self.environment(of: id, on: hub)
        // Whom the job runs as: root with --allow-root, else nobody when the tests run as root.
        let user = geteuid() == 0 && !asRoot ? "nobody" : String(cString: getpwuid(geteuid())!.pointee.pw_name)
        let entry = try #require(getpwnam(user))
        #expect(seen["USER"] == user)
        #expect(seen["LOGNAME"] == user)
        #expect(seen["HOME"] == String(cString: entry.pointee.pw_dir))
        #expect(seen["SHELL"] == String(cString: entry.pointee.pw_shell))
        #expect(seen["PATH"]?.isEmpty == false)
        #expect(seen["XN_JOB_ID"] == id)
        #expect(seen["LC_TIME"] == "C")
        #expect(seen["TZ"] == "UTC")
        #expect(seen["PASSED_ON"] == "yes")
        // The spec's own variables win over the runner's.
        #expect(seen["MINE"] == "1")
        #expect(seen["LANG"] == "en_US.UTF-8")
        for secret in ["XN_TOKEN", "XN_CALLBACK_SECRET", "AWS_SECRET_ACCESS_KEY", "NOT_SET_ANYWHERE"] {
            #expect(seen[secret] == nil, "\(secret) reached the job")
        }
        let documented: Set<String> = [
            "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "XN_JOB_ID", "PASSED_ON", "MINE",
        ]
        let unexpected = seen.keys.filter { !documented.contains($0) && !$0.hasPrefix("LC_") }
        #expect(unexpected.isEmpty, "variables beyond the documented set: \(unexpected.sorted())")
    }

    @Test func passingAnXNVariableIsRefusedAtStart() async throws {
        let refused = try await runXN([
            "hub", "-p", "0", "--data", try temporaryFolder(), "--pass-env", "PATH,XN_TOKEN",
        ])
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("--pass-env XN_TOKEN: the XN_* variables are xn's own secrets"))
    }
}
