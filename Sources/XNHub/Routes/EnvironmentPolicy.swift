/// What a job's `env` may set while a whitelist is in force: a whitelist says which program
/// runs, and these variables would let a job choose other code for it to run anyway.
///
/// A deny-list, not an allow-list, by default: http-runner's specs pass data to their commands
/// in arbitrary variables (`BUILD_ID`, `TARGET`), and an allow-list would refuse every one of
/// them. The list covers the dynamic loader, the shells, the common interpreters and tools that
/// run a command named in a variable. A whitelisted program that reads variables of its own to
/// pick code (make's `CC`) is not covered: `--allow-env NAME,...` turns the policy into an
/// allow-list for hubs that need it airtight. A denied name stays denied even then.
public struct EnvironmentPolicy: Sendable {
    /// Names a job may set besides nothing, when the hub has `--allow-env`; nil: any name not denied.
    public let allowed: Set<String>?

    public init(allowed: Set<String>? = nil) {
        self.allowed = allowed
    }

    /// Why `name` may not be set while a whitelist is in force, or nil when it may.
    public func refusal(of name: String) -> String? {
        if let reason = Self.denialReason(of: name) {
            return "env \(name) is refused while a whitelist is in force: \(reason)"
        }
        if let allowed, !allowed.contains(name) {
            return "env \(name) is not in this hub's --allow-env list"
        }
        return nil
    }

    /// Why `name` changes which code runs, or nil when it is not a name this policy knows to.
    public static func denialReason(of name: String) -> String? {
        if let reason = deniedNames[name] { return reason }
        return deniedPrefixes.first { name.hasPrefix($0.prefix) }?.reason
    }

    private static let loader = "the dynamic loader reads it"
    private static let shell = "a shell runs code from it"
    private static let runsCommand = "programs run the command it names"

    /// Exact names, with the reason given to the caller.
    private static let deniedNames: [String: String] = [
        // glibc's list of variables it drops for set-user-ID programs, for the same reason.
        "GCONV_PATH": loader, "GETCONF_DIR": loader, "HOSTALIASES": loader, "LOCALDOMAIN": loader,
        "LOCPATH": loader, "MALLOC_TRACE": loader, "NIS_PATH": loader, "NLSPATH": loader,
        "RESOLV_HOST_CONF": loader, "RES_OPTIONS": loader, "GLIBC_TUNABLES": loader,
        // Shells.
        "BASH_ENV": shell, "ENV": shell, "SHELLOPTS": shell, "BASHOPTS": shell, "PS4": shell,
        "PROMPT_COMMAND": shell, "IFS": shell, "CDPATH": shell, "GLOBIGNORE": shell, "SHELL": runsCommand,
        // Which programs a whitelisted script runs, and the configuration files they read.
        "PATH": "it chooses the programs a whitelisted script runs",
        "HOME": "programs read configuration that names commands from it",
        "XDG_CONFIG_HOME": "programs read configuration that names commands from it",
        "XDG_CONFIG_DIRS": "programs read configuration that names commands from it",
        // Interpreters.
        "PERL5OPT": "perl runs code from it", "PERL5LIB": "perl loads modules from it",
        "PERLLIB": "perl loads modules from it", "PERL5DB": "perl runs code from it",
        "NODE_OPTIONS": "node runs code from it", "NODE_PATH": "node loads modules from it",
        "RUBYOPT": "ruby runs code from it", "RUBYLIB": "ruby loads code from it",
        "GEM_HOME": "ruby loads code from it", "GEM_PATH": "ruby loads code from it",
        "JAVA_TOOL_OPTIONS": "the JVM loads agents from it", "_JAVA_OPTIONS": "the JVM loads agents from it",
        "JDK_JAVA_OPTIONS": "the JVM loads agents from it", "CLASSPATH": "the JVM loads code from it",
        "TCLLIBPATH": "tcl loads code from it", "PHPRC": "php loads configuration that runs code",
        "PHP_INI_SCAN_DIR": "php loads configuration that runs code",
        "OPENSSL_CONF": "OpenSSL loads engines named in it", "OPENSSL_ENGINES": "OpenSSL loads engines from it",
        // Tools that run a command named in a variable.
        "PAGER": runsCommand, "MANPAGER": runsCommand, "EDITOR": runsCommand, "VISUAL": runsCommand,
        "BROWSER": runsCommand, "LESSOPEN": runsCommand, "LESSCLOSE": runsCommand,
        "SSH_ASKPASS": runsCommand, "SUDO_ASKPASS": runsCommand,
        "MAKEFLAGS": "make takes variables and options from it", "MFLAGS": "make takes options from it",
        "GNUMAKEFLAGS": "make takes options from it", "MAKEFILES": "make reads makefiles from it",
    ]

    /// Families of names.
    private static let deniedPrefixes: [(prefix: String, reason: String)] = [
        ("LD_", loader), ("DYLD_", loader), ("BASH_FUNC_", "bash defines functions from it"),
        ("PYTHON", "python reads its start-up code and module paths from PYTHON* variables"),
        ("LUA_", "lua runs code from it"), ("GIT_", "git runs commands named in GIT_* variables"),
    ]
}
