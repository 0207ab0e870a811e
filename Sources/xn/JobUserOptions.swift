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

    @Option(
        help: """
            Memory a job may use: bytes, or with K, M, G. All of the job together, swap included, where jobs get \
            a cgroup (the OOM killer ends it); else address space per process (RLIMIT_AS).
            """)
    var limitMemory: ByteCount?

    @Option(help: "Files a job may have open (RLIMIT_NOFILE).")
    var limitFiles: Int?

    @Option(
        help: """
            Processes a job may have at once (stops fork bombs): per job where jobs get a cgroup, else per user \
            (RLIMIT_NPROC, not enforced for root).
            """)
    var limitProcs: Int?

    @Flag(help: "Run jobs without a cgroup of their own even where this process could make one.")
    var noCgroups = false

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

    /// The executor for jobs, with a control group per job where this process may make them, and
    /// one line for the start banner saying which.
    func executor() -> (executor: PipeExecutor, banner: String) {
        if noCgroups { return (PipeExecutor(), "no cgroups (--no-cgroups): limits are per process") }
        switch CgroupHost.discover() {
        case .success(let host): return (PipeExecutor(cgroups: host), host.description)
        case .failure(let reason): return (PipeExecutor(), "no cgroups (\(reason)): limits are per process")
        }
    }
}
