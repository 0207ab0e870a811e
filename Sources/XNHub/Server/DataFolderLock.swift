import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One hub per data folder: a second hub on the same folder would run the same queue twice.
enum DataFolderLock {
    /// Takes an exclusive lock held until the process exits (the fd is never closed).
    static func acquire(_ folder: String) throws {
        let path = (folder as NSString).appendingPathComponent("hub.lock")
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw HubError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            throw HubError("data folder \(folder) is in use by another hub")
        }
    }
}
