import Foundation
import Glibc
import Testing

/// HTTPS and WSS: a hub with a certificate from a CA the suite makes at run time, clients and
/// workers that trust that CA, and ones that do not.
@Suite(.timeLimit(.minutes(2)))
struct TLSTests {
    @Test func clientsAndWorkersTrustingTheHubsCAWorkAndOthersAreRefused() async throws {
        let pki = try TestPKI.make()
        let hub = try await HubProcess.start(
            data: try temporaryFolder(), ["--tls-cert", pki.serverCertificate, "--tls-key", pki.serverKey])
        defer { hub.killNow() }
        #expect(hub.url.hasPrefix("https://127.0.0.1:"))

        // HTTPS for the API, WSS for following output and for live input.
        let ran = try await runXN(["run", "--ca", pki.ca, "--", "echo", "over tls"], hub: hub.url)
        #expect(ran.status == 0 && ran.stdout == "over tls\n", "\(ran.stderr)")
        let typed = try await runXN(
            ["run", "-i", "--", "cat"], hub: hub.url, stdin: "typed over wss\n", environment: ["XN_CA": pki.ca])
        #expect(typed.stdout == "typed over wss\n", "\(typed.stderr)")

        // A certificate from another CA, or none trusted at all: refused, with a reason.
        for refusedCA in [["--ca", pki.otherCA], []] {
            let refused = try await runXN(["list"] + refusedCA, hub: hub.url)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("TLS certificate is not trusted"), "\(refused.stderr)")
        }
        let plain = try await runXN(["list"], hub: hub.url.replacingOccurrences(of: "https:", with: "http:"))
        #expect(plain.status == 1)

        // A worker over WSS that trusts the CA runs jobs; one that trusts another CA says why.
        let worker = try WorkerFailureTests.workerProcess(
            hub.url, name: "tls", ["--labels", "via=tls", "--ca", pki.ca])
        defer { worker.signal(SIGKILL) }
        let remote = try await runXN(["run", "--ca", pki.ca, "--on", "via=tls", "--", "echo", "remote"], hub: hub.url)
        #expect(remote.stdout == "remote\n", "\(remote.stderr)")
        let doubter = try WorkerFailureTests.workerProcess(hub.url, name: "doubter", ["--ca", pki.otherCA])
        defer { doubter.signal(SIGKILL) }
        try await eventually("the worker with the wrong CA says why") {
            doubter.stderrText.contains("TLS certificate is not trusted") ? true : nil
        }
    }

    @Test func aKeyThatDoesNotMatchTheCertificateStopsTheHubAtStart() async throws {
        let pki = try TestPKI.make()
        let refused = try await runXN(
            [
                "hub", "-p", "0", "--data", try temporaryFolder(), "--tls-cert", pki.serverCertificate, "--tls-key",
                pki.otherKey,
            ])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("the key must match the certificate"))
        let half = try await runXN([
            "hub", "-p", "0", "--data", try temporaryFolder(), "--tls-cert", pki.serverCertificate,
        ])
        #expect(half.status == 64)
        #expect(half.stderr.contains("--tls-cert and --tls-key go together"))
    }
}

/// A private CA, a server certificate it signed for 127.0.0.1 and localhost, and an unrelated CA,
/// made with openssl in a temporary folder.
struct TestPKI {
    let ca: String
    let serverCertificate: String
    let serverKey: String
    let otherCA: String
    let otherKey: String

    static func make() throws -> TestPKI {
        let folder = try temporaryFolder()
        let ext = folder + "/server.ext"
        try [
            "basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=serverAuth",
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
        ].joined(separator: "\n").write(toFile: ext, atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try openssl(
            ["req", "-x509"] + ec + [
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=xn test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ], in: folder)
        try openssl(
            ["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], in: folder)
        try openssl(
            [
                "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days",
                "2",
                "-extfile", ext, "-out", "server.pem",
            ], in: folder)
        try openssl(
            ["req", "-x509"] + ec + [
                "-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=xn other CA",
            ],
            in: folder)
        return TestPKI(
            ca: folder + "/ca.pem", serverCertificate: folder + "/server.pem", serverKey: folder + "/server.key",
            otherCA: folder + "/other.pem", otherKey: folder + "/other.key")
    }

    private static func openssl(_ arguments: [String], in folder: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestFailure("openssl \(arguments.prefix(2).joined(separator: " ")) failed")
        }
    }
}
