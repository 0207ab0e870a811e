import Foundation

/// http-runner's `-w`, made to hold: a command is allowed when it is the same program as an entry,
/// after these rules, applied on the hub's file system.
///
/// 1. An entry is a bare name (`echo`, looked up in the hub's PATH) or an absolute path.
/// 2. A requested bare name is looked up in the hub's PATH (a job's own `env.PATH` plays no part);
///    an absolute path is taken as is; a relative path (`./sh`, `bin/sh`) is refused, since it
///    would depend on the job's working directory.
/// 3. Both sides are reduced to the real file: `..`, `.`, repeated slashes and symbolic links are
///    resolved. The request is allowed when its real file is one of the entries' real files.
/// 4. The job then runs that real file, so what was checked is what runs.
///
/// So `/bin/../bin/sh` and `sh` match an entry `/bin/sh`, while a symlink `/tmp/x -> /bin/rm`,
/// `./sh` or a name not on the hub's PATH do not.
public struct CommandWhitelist: Sendable {
    public let entries: [String]
    private let allowed: Set<String>

    public init(_ entries: [String]) {
        self.entries = entries
        allowed = Set(entries.compactMap { Self.realFile(of: $0) })
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The real file to run for `command`, or why it is refused.
    public func check(_ command: String) -> Result<String, WhitelistRefusal> {
        if command.contains("/") && !command.hasPrefix("/") {
            return .failure(WhitelistRefusal("relative command paths are refused when a whitelist is set: \(command)"))
        }
        guard let real = Self.realFile(of: command), allowed.contains(real) else {
            return .failure(WhitelistRefusal("command not in whitelist: \(command)"))
        }
        return .success(real)
    }

    /// The real, absolute path of a bare name (found on the hub's PATH) or an absolute path.
    public static func realFile(of command: String) -> String? {
        let candidate: String
        if command.hasPrefix("/") {
            candidate = command
        } else if !command.contains("/"), !command.isEmpty {
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            guard
                let found = path.split(separator: ":").map({ "\($0)/\(command)" }).first(where: {
                    FileManager.default.isExecutableFile(atPath: $0)
                })
            else { return nil }
            candidate = found
        } else {
            return nil
        }
        guard let real = realpath(candidate, nil) else { return nil }
        defer { free(real) }
        let resolved = String(cString: real)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isFolder), !isFolder.boolValue,
            FileManager.default.isExecutableFile(atPath: resolved)
        else { return nil }
        return resolved
    }
}

/// Why the whitelist refused a command, for people.
public struct WhitelistRefusal: Error, Sendable {
    public let message: String

    init(_ message: String) {
        self.message = message
    }
}
