import Foundation
import XNExec
import XNProtocol

/// The `xn-testtask` helper program, built next to the test bundle.
enum TestTask {
    /// Its path: beside the test executable (or up to 3 folders above it), else `<repo>/.build/debug`.
    static let path: String = {
        let fileManager = FileManager.default
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var folder = executable.deletingLastPathComponent()
        for _ in 0...3 {
            let candidate = folder.appendingPathComponent("xn-testtask").path
            if fileManager.isExecutableFile(atPath: candidate) { return candidate }
            folder.deleteLastPathComponent()
        }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return repo.appendingPathComponent(".build/debug/xn-testtask").path
    }()

    /// A request running `xn-testtask ARGUMENTS...`.
    static func request(
        _ arguments: String..., environment: [String: String] = [:], workingDirectory: String? = nil,
        standardInput: [UInt8]? = nil, outputLimit: Int = 16 << 20, keepsInputOpen: Bool = false
    ) -> ProcessRequest {
        ProcessRequest(
            command: path, arguments: arguments, environment: environment, workingDirectory: workingDirectory,
            standardInput: standardInput, outputLimit: outputLimit, keepsInputOpen: keepsInputOpen)
    }

    /// A request running `/bin/sh -c SCRIPT` with the helper's path as `$0`.
    static func shell(_ script: String) -> ProcessRequest {
        ProcessRequest(command: "/bin/sh", arguments: ["-c", script, path])
    }
}

/// The same deterministic bytes as `xn-testtask bytes COUNT SEED`.
func generatedBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: state >> 33)
    }
}
