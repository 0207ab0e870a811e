import Foundation
import Glibc
import NIOPosix

/// One stream of one attempt's output on disk, so output waiting for the hub costs no memory.
///
/// - Important: Appends come from the attempt's task only; reads (`pread`) may come from any task.
///   Both run on NIO's blocking-I/O thread pool: a disk that stalls (writeback throttling) must
///   not park the few cooperative threads that also read the hub's messages and send heartbeats.
final class SpoolFile: @unchecked Sendable {
    private let fd: Int32
    let path: String

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw WorkerError("cannot create spool file \(path): \(String(cString: strerror(errno)))")
        }
    }

    func append(_ bytes: [UInt8], at offset: Int) async throws {
        try await NIOThreadPool.singleton.runIfActive { try self.appendNow(bytes, at: offset) }
    }

    func read(at offset: Int, count: Int) async throws -> [UInt8] {
        try await NIOThreadPool.singleton.runIfActive { self.readNow(at: offset, count: count) }
    }

    private func appendNow(_ bytes: [UInt8], at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                pwrite(fd, raw.baseAddress! + done, bytes.count - done, off_t(offset + done))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw WorkerError("cannot write spool file \(path): \(String(cString: strerror(errno)))")
            }
            done += written
        }
    }

    private func readNow(at offset: Int, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { raw in pread(fd, raw.baseAddress!, count, off_t(offset)) }
        if got <= 0 { return [] }
        bytes.removeLast(count - got)
        return bytes
    }

    /// Closes and deletes the file.
    func remove() {
        close(fd)
        unlink(path)
    }
}
