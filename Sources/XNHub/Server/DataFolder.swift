import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One hub per data folder: a second hub on the same folder would run the same queue twice.
enum DataFolderLock {
    /// Takes an exclusive lock held until the process exits (the fd is never closed).
    static func acquire(_ folder: String) throws {
        let path = (folder as NSString).appendingPathComponent("hub.lock")
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw HubError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            throw HubError("data folder \(folder) is in use by another hub")
        }
    }
}

/// The data folder holds every job, its output and the tokens' hashes: created 0700, and never
/// used when another user could write to it (and so replace the database or the lock).
enum DataFolder {
    static func prepare(_ folder: String) throws {
        if let attributes = try? FileManager.default.attributesOfItem(atPath: folder) {
            guard attributes[.type] as? FileAttributeType == .typeDirectory else {
                throw HubError("data folder \(folder) is not a folder")
            }
            let owner = (attributes[.ownerAccountID] as? NSNumber)?.uint32Value ?? 0
            if owner != geteuid() && owner != 0 {
                throw HubError(
                    "data folder \(folder) belongs to uid \(owner), not to the user the hub runs as "
                        + "(uid \(geteuid())): that user could replace the database; use a folder of your own")
            }
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0
            if mode & 0o022 != 0 {
                throw HubError(
                    "data folder \(folder) is writable by other users (mode \(String(mode, radix: 8))): they could "
                        + "replace the database; chmod go-w \(folder), or use another folder")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw HubError("cannot create data folder \(folder): \(error.localizedDescription)")
        }
        guard chmod(folder, 0o700) == 0 else {
            throw HubError("cannot make data folder \(folder) private: \(String(cString: strerror(errno)))")
        }
    }
}
