import Foundation
public import XNExec

#if canImport(Glibc)
    import Glibc
#endif

/// The environment a job starts from, before its spec's `env`: a small, documented set, never the
/// whole environment of the hub or worker, whose `XN_TOKEN`, `XN_CALLBACK_SECRET` and whatever
/// else its operator exported would otherwise reach every job, whoever it runs as.
public enum JobEnvironment {
    /// Taken from the runner when it has them: where programs are, the locale, the time zone.
    static let fromRunner = ["PATH", "LANG", "LANGUAGE", "TZ"]
    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// PATH, HOME, USER, LOGNAME and SHELL of the user jobs run as (`identity`, else the runner's
    /// own), LANG, LANGUAGE, LC_* and TZ as the runner has them, and the `passing` names the
    /// operator chose (`--pass-env`). `XN_JOB_ID` and, for terminals, `TERM` are added at spawn.
    public static func base(
        runner: [String: String], identity: ProcessIdentity?, passing: [String] = []
    ) -> [String: String] {
        var environment: [String: String] = [:]
        for (name, value) in runner where fromRunner.contains(name) || name.hasPrefix("LC_") {
            environment[name] = value
        }
        environment["PATH"] = environment["PATH"] ?? defaultPath
        let user = identity.map { getpwnam($0.name) } ?? getpwuid(geteuid())
        if let user {
            let name = String(cString: user.pointee.pw_name)
            environment["USER"] = name
            environment["LOGNAME"] = name
            environment["HOME"] = String(cString: user.pointee.pw_dir)
            let shell = String(cString: user.pointee.pw_shell)
            environment["SHELL"] = shell.isEmpty ? "/bin/sh" : shell
        } else if let identity {
            environment["USER"] = identity.name
            environment["LOGNAME"] = identity.name
            environment["HOME"] = "/"
            environment["SHELL"] = "/bin/sh"
        }
        for name in passing where !isRunnerSecret(name) {
            if let value = runner[name] { environment[name] = value }
        }
        return environment
    }

    /// The runner's own `XN_*` variables (tokens, the callback secret): never passed to a job.
    public static func isRunnerSecret(_ name: String) -> Bool {
        name.hasPrefix("XN_")
    }
}
