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

    @Option(
        help: """
            CPU a job may use, in percent of one CPU (150: one and a half); it is throttled beyond. Needs a cgroup \
            per job.
            """)
    var limitCpuPercent: Int?

    @Flag(help: "Run jobs without a cgroup of their own even where this process could make one.")
    var noCgroups = false

    @Flag(
        help: """
            Isolate every job with bubblewrap: the system read-only, its own /tmp, its own PID namespace, no \
            network unless the job asks (network: true), and not this runner's data folder. Without it, only jobs \
            that ask (isolate: true) or whose token forces it are.
            """)
    var isolate = false

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
            ("--limit-procs", limitProcs), ("--limit-cpu-percent", limitCpuPercent),
        ] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1") }
        }
        if runAs != nil && allowRoot { throw ValidationError("--run-as and --allow-root do not go together") }
        if runAs != nil && geteuid() != 0 { throw ValidationError("--run-as needs xn to be started as root") }
    }

    var limits: ResourceLimits {
        ResourceLimits(
            cpuSeconds: limitCpu, addressSpaceBytes: limitMemory?.bytes, openFiles: limitFiles, processes: limitProcs,
            cpuPercent: limitCpuPercent)
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

    /// The executor for jobs: a control group per job where this process may make them, and
    /// bubblewrap for isolated jobs where it can make a sandbox as `identity`, hiding `folders`;
    /// with the start banner's words for both.
    func executor(
        identity: ProcessIdentity?, hiding folders: [String]
    ) async throws -> (
        executor: PipeExecutor, banner: String
    ) {
        var cgroups: CgroupHost?
        var withoutCgroups = "--no-cgroups"
        if !noCgroups {
            switch CgroupHost.discover() {
            case .success(let host): cgroups = host
            case .failure(let reason): withoutCgroups = reason.description
            }
        }
        if cgroups == nil, limitCpuPercent != nil {
            throw ValidationError("--limit-cpu-percent needs a cgroup per job, and there is none (\(withoutCgroups))")
        }
        var sandbox: Sandbox?
        var withoutSandbox: String
        switch Sandbox.discover(hiding: folders) {
        case .success(let found):
            let problem = await PipeExecutor(sandbox: found).checkSandbox(as: identity)
            withoutSandbox = problem?.description ?? ""
            sandbox = problem == nil ? found : nil
        case .failure(let reason):
            withoutSandbox = reason.description
        }
        if isolate, sandbox == nil {
            cgroups?.remove()
            throw ValidationError("--isolate: \(withoutSandbox)")
        }
        var banner = cgroups?.description ?? "no cgroups (\(withoutCgroups)): limits are per process"
        if sandbox != nil {
            banner += isolate ? "; every job isolated (bubblewrap)" : "; jobs may ask to be isolated (bubblewrap)"
        } else {
            banner += "; no isolation (\(withoutSandbox))"
        }
        let executor = PipeExecutor(
            cgroups: cgroups, withoutCgroups: withoutCgroups, sandbox: sandbox, withoutSandbox: withoutSandbox)
        return (executor, banner)
    }
}
