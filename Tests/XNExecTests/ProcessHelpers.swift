import Foundation
import Synchronization
import Testing
import XNExec
import XNProtocol

/// Every executor the conformance suites run against.
let executors: [any JobExecutor] = [PipeExecutor()]

/// A process that ran to the end, with its output.
struct Finished {
    var result: ProcessResult
    var chunks: [OutputChunk]

    func bytes(_ stream: OutputStreamKind) -> [UInt8] {
        chunks.filter { $0.stream == stream }.flatMap(\.bytes)
    }

    var stdout: String { String(decoding: bytes(.stdout), as: UTF8.self) }
}

/// Starts `request` and waits for its end and all of its output.
func run(_ executor: any JobExecutor, _ request: ProcessRequest) async throws -> Finished {
    let process = try executor.start(request)
    var chunks: [OutputChunk] = []
    for await chunk in process.output {
        chunks.append(chunk)
    }
    return Finished(result: await process.result(), chunks: chunks)
}

/// What the `SpawnError` thrown by `body` says; records an issue (and gives nil) when it throws none.
func refusal(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> String? {
    #expect(throws: SpawnError.self, sourceLocation: sourceLocation) { try body() }?.description
}

/// Reads a process's output in the background so a test can look at it while the process runs.
final class OutputCollector: Sendable {
    private let chunks = Mutex<[OutputChunk]>([])

    init(_ process: any RunningProcess) {
        let stream = process.output
        Task { [self] in
            for await chunk in stream {
                chunks.withLock { $0.append(chunk) }
            }
        }
    }

    func text(_ stream: OutputStreamKind) -> String {
        String(decoding: chunks.withLock { $0.filter { $0.stream == stream }.flatMap(\.bytes) }, as: UTF8.self)
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(10), _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}

/// Whether `pid` is a live process whose command line contains `marker`.
///
/// A zombie counts as dead (this machine may not reap orphans), and so does a pid reused by another program.
/// Right after a spawn returns, the kernel may not have set up the new command line yet: poll for life.
func isAlive(_ pid: Int32, marker: String) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let commandEnd = stat.range(of: ") ", options: .backwards)
    else { return false }
    if stat[commandEnd.upperBound...].hasPrefix("Z") { return false }
    guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
    return String(decoding: cmdline, as: UTF8.self).contains(marker)
}

/// A unique string to put on a command line, so a test finds only its own processes.
func makeMarker() -> String {
    "xn-test-\(UUID().uuidString)"
}

func makeTemporaryDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "/xn-exec-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
    return URL(fileURLWithPath: String(cString: made)).resolvingSymlinksInPath().path
}
