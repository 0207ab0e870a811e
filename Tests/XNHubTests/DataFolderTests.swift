import Foundation
import Glibc
import Testing

/// The data folder holds every job's output and transcripts: only the hub's user may read it.
@Suite(.timeLimit(.minutes(2)))
struct DataFolderTests {
    /// Permission bits of `path`, as the system's stat reports them.
    static func mode(_ path: String) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { return -1 }
        return Int(info.st_mode & 0o7777)
    }

    @Test func theFolderAndEveryFileInItAreTheOwnersOnlyWhateverTheUmask() async throws {
        let data = try temporaryFolder() + "/data"
        // umask 000 would make everything SQLite creates world-readable.
        let hub = try ChildProcess(
            "/bin/sh", ["-c", "umask 000; exec \"$0\" hub -p 0 --data \"$1\" --log-level warning", Binaries.xn, data])
        defer { hub.signal(SIGKILL) }
        let url = try await eventually("hub banner") { () -> String? in
            if !hub.process.isRunning { throw TestFailure("hub exited: \(hub.stderrText)") }
            guard let line = hub.stdoutText.split(separator: "\n").first(where: { $0.contains("listening on") }),
                let range = line.range(of: "http://[^ ]+", options: .regularExpression)
            else { return nil }
            return String(line[range])
        }
        // Output and a transcript are written (an attach that may type is recorded).
        let ran = try await runXN(["run", "-i", "--", "sh", "-c", "read line; echo got $line"], hub: url, stdin: "x\n")
        #expect(ran.stdout.contains("got x"), "\(ran.stderr)")
        #expect(Self.mode(data) == 0o700)
        let files = try FileManager.default.subpathsOfDirectory(atPath: data).sorted()
        #expect(files.contains("xn.sqlite") && files.contains("xn.sqlite-wal"), "\(files)")
        // The job's output: output/<first two characters of its id>/<id>.stdout.
        #expect(files.contains { $0.hasPrefix("output/") && $0.hasSuffix(".stdout") }, "\(files)")
        for file in files {
            var isFolder: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: data + "/" + file, isDirectory: &isFolder)
            let mode = Self.mode(data + "/" + file)
            #expect(mode == (isFolder.boolValue ? 0o700 : 0o600), "\(file) is \(String(mode, radix: 8))")
        }
    }

    @Test func filesAnOlderHubLeftOpenAreClosedAndAFolderOthersMayWriteIsRefused() async throws {
        let data = try temporaryFolder()
        chmod(data, 0o755)
        let database = data + "/xn.sqlite"
        #expect(FileManager.default.createFile(atPath: database, contents: nil, attributes: [.posixPermissions: 0o644]))
        let hub = try await HubProcess.start(data: data)
        defer { hub.killNow() }
        #expect(Self.mode(database) == 0o600)
        #expect(Self.mode(data) == 0o755, "an existing folder no one else may write is left as it is")
        await hub.kill()

        for mode in [0o777, 0o1777, 0o775] {
            let open = try temporaryFolder()
            chmod(open, mode_t(mode))
            let refused = try await runXN(["hub", "-p", "0", "--data", open])
            #expect(refused.status == 1)
            #expect(
                refused.stderr.contains(
                    "data folder \(open) is writable by other users (mode \(String(mode, radix: 8)))"))
            #expect(!FileManager.default.fileExists(atPath: open + "/xn.sqlite"), "nothing was created in it")
            // Token commands on the folder refuse it too.
            let offline = try await runXN(["token", "create", "--role", "admin", "--data", open])
            #expect(offline.status == 1)
            #expect(offline.stderr.contains("is writable by other users"))
        }
    }
}
