import Foundation
import Glibc
import Logging
import Testing
import XNStore

@testable import XNHub

/// `xn token …`, tokens from flags, files and the environment, and what a hub with tokens
/// tells the person at the terminal.
@Suite(.timeLimit(.minutes(2)))
struct TokenCLITests {
    @Test func theFirstAdminTokenIsMadeOfflineThenEveryCommandNeedsOne() async throws {
        let data = try temporaryFolder()
        let made = try await runXN(["token", "create", "--role", "admin", "--name", "root", "--data", data])
        #expect(made.status == 0, "\(made.stderr)")
        let admin = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(admin.hasPrefix("xn_") && admin.count > 40)
        #expect(made.stderr.contains("shown this once"))
        // Only a hash is stored: the secret is nowhere in the data folder.
        let database = try Data(contentsOf: URL(fileURLWithPath: data + "/xn.sqlite"))
        #expect(database.range(of: Data(admin.utf8)) == nil)

        let hub = try await HubProcess.start(data: data)
        defer { hub.killNow() }
        let anonymous = try await runXN(["list"], hub: hub.url)
        #expect(anonymous.status == 1)
        #expect(anonymous.stderr.contains("needs a bearer token"))
        let busy = try await runXN(["token", "list", "--data", data])
        #expect(busy.status == 1)
        #expect(busy.stderr.contains("in use"))

        let asAdmin = ["XN_TOKEN": admin]
        let alice = try await runXN(
            ["token", "create", "--role", "submit", "--name", "alice", "--allow", "echo"], hub: hub.url,
            environment: asAdmin)
        #expect(alice.status == 0, "\(alice.stderr)")
        let aliceFile = try temporaryFolder() + "/alice"
        try alice.stdout.write(toFile: aliceFile, atomically: true, encoding: .utf8)
        let echoed = try await runXN(["run", "--token-file", aliceFile, "--", "echo", "hi"], hub: hub.url)
        #expect(echoed.status == 0 && echoed.stdout == "hi\n", "\(echoed.stderr)")
        let listed = try await runXN(["list", "--json"], hub: hub.url, environment: ["XN_TOKEN_FILE": aliceFile])
        #expect(listed.status == 0 && listed.stdout.contains("alice"), "\(listed.stdout)")
        let refused = try await runXN(["run", "--token-file", aliceFile, "--", "ls"], hub: hub.url)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("not in whitelist: ls (this token's whitelist)"))
        let notAdmin = try await runXN(["token", "list", "--token-file", aliceFile], hub: hub.url)
        #expect(notAdmin.status == 1)
        #expect(notAdmin.stderr.contains("needs admin"))

        let table = try await runXN(["token", "list"], hub: hub.url, environment: asAdmin)
        #expect(table.stdout.contains("alice") && table.stdout.contains("allow echo"))
        #expect(!table.stdout.contains(alice.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let revoked = try await runXN(["token", "revoke", "alice"], hub: hub.url, environment: asAdmin)
        #expect(revoked.status == 0)
        let afterwards = try await runXN(["run", "--token-file", aliceFile, "--", "echo", "hi"], hub: hub.url)
        #expect(afterwards.status == 1)
        #expect(afterwards.stderr.contains("token 'alice' was revoked"))
        let wrong = try await runXN(["list", "--token", "xn_wrong"], hub: hub.url)
        #expect(wrong.stderr.contains("unknown token"))

        // A worker dials in with its own token; without one the hub refuses it.
        let workerToken = try await runXN(
            ["token", "create", "--role", "worker", "--name", "w1", "--labels", "pool=tok"], hub: hub.url,
            environment: asAdmin)
        let worker = try WorkerFailureTests.workerProcess(
            hub.url, name: "w1",
            ["--labels", "pool=tok", "--token", workerToken.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
        defer { worker.signal(SIGKILL) }
        let anonymousWorker = try WorkerFailureTests.workerProcess(hub.url, name: "w2", ["--log-level", "error"])
        defer { anonymousWorker.signal(SIGKILL) }
        let remote = try await runXN(
            ["run", "--on", "pool=tok", "--", "echo", "remote"], hub: hub.url, environment: asAdmin)
        #expect(remote.stdout == "remote\n", "\(remote.stderr)")
        try await eventually("the worker without a token says why") {
            anonymousWorker.stderrText.contains("refused this worker") ? true : nil
        }
        let workers = try await runXN(["workers"], hub: hub.url, environment: asAdmin)
        #expect(workers.stdout.contains("w1") && !workers.stdout.contains("w2"))
    }

    @Test func aHubWithTokensMayListenBeyondLoopbackAndOneWithoutMayNot() async throws {
        let store = try SQLiteJobStore(path: nil)
        let tokens = TokenRegistry(store: store)
        try await tokens.load()
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        var configuration = HubConfiguration()
        configuration.host = "0.0.0.0"
        #expect(throws: HubError.self) { try checkExposure(configuration, tokens: tokens, logger: logger) }
        configuration.insecureNoAuth = true
        try checkExposure(configuration, tokens: tokens, logger: logger)
        configuration.insecureNoAuth = false
        _ = try await tokens.create(.init(name: "root", role: .admin))
        // With tokens: beyond loopback only over TLS, or when told tokens may travel in clear text.
        #expect {
            try checkExposure(configuration, tokens: tokens, logger: logger)
        } throws: { error in
            (error as? HubError)?.description.contains("over plain HTTP: every request's token would cross") == true
        }
        configuration.insecureHTTP = true
        try checkExposure(configuration, tokens: tokens, logger: logger)
        configuration.insecureHTTP = false
        configuration.tlsCertificate = "hub.pem"
        try checkExposure(configuration, tokens: tokens, logger: logger)
        configuration.tlsCertificate = nil
        configuration.host = "127.0.0.1"
        try checkExposure(configuration, tokens: tokens, logger: logger)
        configuration.host = "0.0.0.0"
        configuration.insecureHTTP = true
        // Revoking every token leaves authentication on.
        _ = try await tokens.revoke("root")
        try await tokens.load()
        #expect(tokens.isEnabled)
        try checkExposure(configuration, tokens: tokens, logger: logger)
    }
}
