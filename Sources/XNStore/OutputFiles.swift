import Foundation
import XNProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// Each job's output, one file per stream under the data folder's `output` folder: written once
/// with `pwrite` at its offset and read back with large `pread`s, never through SQLite.
///
/// The size SQLite records for a stream is the truth: a file may run longer than it after a crash
/// (bytes written, size not yet recorded), and `trim` cuts it back when the store opens. Files sit
/// in 256 folders named by the id's first two characters, so no folder holds a million entries.
final class OutputFiles: Sendable {
    let folder: String
    /// A private folder made for an in-memory store, removed with it.
    private let isTemporary: Bool

    init(folder: String) throws {
        self.folder = folder
        isTemporary = false
        try Self.makeFolder(folder)
    }

    /// A private temporary folder, for a store that keeps nothing after it closes.
    init() throws {
        var template = Array((NSTemporaryDirectory() + "/xn-output-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw StoreError("cannot make a temporary output folder: \(String(cString: strerror(errno)))")
        }
        folder = String(cString: made)
        isTemporary = true
    }

    deinit {
        if isTemporary { try? FileManager.default.removeItem(atPath: folder) }
    }

    func path(_ id: JobID, _ stream: OutputStreamKind) -> String {
        "\(folder)/\(id.rawValue.prefix(2))/\(id.rawValue).\(stream.name)"
    }

    /// Writes `bytes` at `offset` of the stream's file, creating it (and its folder) as needed.
    func write(_ id: JobID, _ stream: OutputStreamKind, offset: Int, bytes: UnsafeRawBufferPointer) throws {
        let path = path(id, stream)
        var fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 && errno == ENOENT {
            try Self.makeFolder((path as NSString).deletingLastPathComponent)
            fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else { throw Self.failure("cannot open \(path) to store output", errno) }
        defer { close(fd) }
        try Self.checkRoom(fd, for: bytes.count, path)
        var status = stat()
        let sizeBefore = fstat(fd, &status) == 0 ? Int(status.st_size) : offset
        var done = 0
        while done < bytes.count {
            let written = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if written < 0 {
                if errno == EINTR { continue }
                let code = errno
                // Give back what part of this write landed: a full disk needs every page.
                _ = ftruncate(fd, off_t(max(sizeBefore, offset)))
                throw Self.failure("cannot store output in \(path)", code)
            }
            done += written
        }
    }

    /// Output may not take the last of the filesystem: the job store needs room to record that
    /// the job ended (and why) and to take new jobs. Keeps 16 MiB free, or an eighth of a
    /// small filesystem.
    private static func checkRoom(_ fd: Int32, for count: Int, _ path: String) throws {
        var info = statvfs()
        guard fstatvfs(fd, &info) == 0 else { return }
        let free = Int(info.f_bavail) * Int(info.f_frsize)
        let reserve = min(16 << 20, Int(info.f_blocks) * Int(info.f_frsize) / 8)
        guard free - count < reserve else { return }
        throw StoreError(
            "cannot store output in \(path): \(String(cString: strerror(ENOSPC))) (\(free) bytes free, "
                + "\(reserve) kept for the job store)")
    }

    /// Up to `count` bytes from `offset` (fewer where the file ends; none when it does not exist).
    func read(_ id: JobID, _ stream: OutputStreamKind, from offset: Int, count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        let path = path(id, stream)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT { return [] }
        guard fd >= 0 else { throw Self.failure("cannot open \(path) to read output", errno) }
        defer { close(fd) }
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = 0
            while initialized < count {
                let got = pread(fd, buffer.baseAddress! + initialized, count - initialized, off_t(offset + initialized))
                if got < 0 && errno == EINTR { continue }
                if got < 0 { failure = errno }
                if got <= 0 { return }
                initialized += got
            }
        }
        if failure != 0 { throw Self.failure("cannot read output from \(path)", failure) }
        return bytes
    }

    /// Cuts the stream's file back to `size` bytes where it is longer (what a crash left beyond
    /// the recorded size, or a retried attempt's output when `size` is 0).
    func trim(_ id: JobID, _ stream: OutputStreamKind, to size: Int) throws {
        let path = path(id, stream)
        var status = stat()
        guard stat(path, &status) == 0 else {
            if errno == ENOENT { return }
            throw Self.failure("cannot read the size of \(path)", errno)
        }
        guard Int(status.st_size) > size else { return }
        guard truncate(path, off_t(size)) == 0 else { throw Self.failure("cannot trim \(path)", errno) }
    }

    /// Deletes both files of a job (gone already is fine).
    func remove(_ id: JobID) {
        for stream in OutputStreamKind.allCases { unlink(path(id, stream)) }
    }

    private static func makeFolder(_ folder: String) throws {
        guard mkdir(folder, 0o700) == 0 || errno == EEXIST else {
            throw failure("cannot create the output folder \(folder)", errno)
        }
    }

    /// An error naming what failed and the system's reason (`No space left on device`, …).
    private static func failure(_ what: String, _ code: Int32) -> StoreError {
        StoreError("\(what): \(String(cString: strerror(code)))")
    }
}
