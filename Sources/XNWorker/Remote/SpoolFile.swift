import Foundation
import Glibc
import NIOCore
import NIOPosix

/// One stream of one attempt's output on disk: what left memory while the hub was away or did
/// not keep up (`HeldOutput`).
///
/// - Important: One spill at a time writes to it (`HeldOutput.spilling`); reads (`pread`) may come
///   from any task.
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

    /// Writes `chunks`, one after the other, from `offset`.
    func append(_ chunks: [[UInt8]], at offset: Int) async throws {
        try await NIOThreadPool.singleton.runIfActive {
            var offset = offset
            for chunk in chunks {
                try self.appendNow(chunk, at: offset)
                offset += chunk.count
            }
        }
    }

    /// `header` followed by up to `count` bytes from `offset`, read straight into the buffer that
    /// goes to the socket (one copy of the output instead of three).
    func read(after header: [UInt8], at offset: Int, count: Int) async throws -> ByteBuffer {
        try await NIOThreadPool.singleton.runIfActive {
            var buffer = ByteBufferAllocator().buffer(capacity: header.count + count)
            buffer.writeBytes(header)
            let got = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
                let got = pread(self.fd, raw.baseAddress!, count, off_t(offset))
                guard got >= 0 else {
                    throw WorkerError("cannot read spool file \(self.path): \(String(cString: strerror(errno)))")
                }
                return got
            }
            guard got == count else {
                throw WorkerError("spool file \(self.path) ends before offset \(offset + count)")
            }
            return buffer
        }
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

    /// Closes and deletes the file.
    func remove() {
        close(fd)
        unlink(path)
    }
}
