import ArgumentParser
import Foundation
import Glibc
import XNExec
import XNWorker

/// Who a hub's or worker's jobs run as, and their resource limits.
struct JobUserOptions: ParsableArguments {
    @Option(help: "Run jobs as this user (needs root; default when root: nobody).")
    var runAs: String?

    @Flag(help: "When started as root, run jobs as root too (default: as nobody).")
    var allowRoot = false

    @Option(help: "CPU seconds a job may use (RLIMIT_CPU).")
    var limitCpu: Int?

    @Option(help: "Address space a job may use (RLIMIT_AS): bytes, or with K, M, G.")
    var limitMemory: ByteCount?

    @Option(help: "Files a job may have open (RLIMIT_NOFILE).")
    var limitFiles: Int?

    @Option(help: "Processes the jobs' user may have (RLIMIT_NPROC; stops fork bombs; not enforced for root).")
    var limitProcs: Int?

    @Option(
        help: ArgumentHelp(
            "Variables of this process's environment to pass to jobs, comma-separated; jobs otherwise get "
                + "PATH, HOME, USER, LOGNAME, SHELL, LANG, LC_*, TZ and XN_JOB_ID (never XN_* secrets).",
            valueName: "names"))
    var passEnv: String?

    /// The names `--pass-env` gives.
    var passedEnvironment: [String] {
        (passEnv ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        for name in passedEnvironment where JobEnvironment.isRunnerSecret(name) {
            throw ValidationError("--pass-env \(name): the XN_* variables are xn's own secrets and never reach jobs")
        }
        for (name, value) in [
            ("--limit-cpu", limitCpu), ("--limit-memory", limitMemory?.bytes), ("--limit-files", limitFiles),
            ("--limit-procs", limitProcs),
        ] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1") }
        }
        if runAs != nil && allowRoot { throw ValidationError("--run-as and --allow-root do not go together") }
        if runAs != nil && geteuid() != 0 { throw ValidationError("--run-as needs xn to be started as root") }
    }

    var limits: ResourceLimits {
        ResourceLimits(
            cpuSeconds: limitCpu, addressSpaceBytes: limitMemory?.bytes, openFiles: limitFiles, processes: limitProcs)
    }

    /// The identity jobs take: `--run-as`, else nobody when xn runs as root without `--allow-root`.
    func identity() throws -> ProcessIdentity? {
        let name: String
        if let runAs {
            name = runAs
        } else if geteuid() == 0 && !allowRoot {
            name = "nobody"
        } else {
            return nil
        }
        guard let user = ProcessIdentity.user(named: name) else {
            throw ValidationError("no user named \(name) on this machine")
        }
        return user
    }

    /// One line for the start banner: whom jobs run as.
    func describe(_ identity: ProcessIdentity?) -> String {
        if let identity {
            let hint = runAs == nil ? "; --allow-root runs them as root" : ""
            return "jobs run as \(identity.name) (uid \(identity.uid))\(hint)"
        }
        if geteuid() == 0 { return "jobs run as root (--allow-root)" }
        let user = getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) } ?? "uid \(geteuid())"
        return "jobs run as \(user)"
    }
}
