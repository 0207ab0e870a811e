// A small, predictable child process for the tests, so they do not depend on `sh` quirks.
// Usage: xn-testtask VERB [ARGS...]; see `usage` below.
#if canImport(Glibc)
    import Glibc
#else
    import Darwin
#endif

let usage = """
    usage: xn-testtask exit N | sleep SECONDS [MARKER] | bytes COUNT SEED | echo WORDS... |
           stderr WORDS... | cat | spawn-child PIDFILE [MARKER] | ignore-term SECONDS |
           env NAME | pwd | fds | forks COUNT | spin SECONDS | burn SECONDS | connect PORT

    """

/// Writes all of `bytes` to `fd`, retrying partial writes; exits 1 if the reader went away.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
    var offset = 0
    while offset < bytes.count {
        let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            exit(1)
        }
        offset += written
    }
}

func writeAll(_ fd: Int32, _ text: String) {
    Array(text.utf8).withUnsafeBytes { writeAll(fd, $0) }
}

func fail(_ message: String, code: Int32 = 2) -> Never {
    writeAll(2, "xn-testtask: \(message)\n")
    exit(code)
}

/// Sleeps the whole duration even if a signal interrupts `nanosleep`.
func sleepSeconds(_ seconds: Double) {
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR {
        request = remaining
    }
}

func argument(_ index: Int, _ what: String) -> String {
    guard CommandLine.arguments.count > index else { fail("missing \(what)\n\(usage)") }
    return CommandLine.arguments[index]
}

func seconds(_ index: Int) -> Double {
    guard let value = Double(argument(index, "SECONDS")), value >= 0 else { fail("SECONDS must be a number") }
    return value
}

/// The generator the tests share: a 64-bit LCG, the high bits of each state as one byte.
func writeBytes(count: Int, seed: UInt64) {
    var state = seed
    var left = count
    var block = [UInt8](repeating: 0, count: 64 << 10)
    while left > 0 {
        let size = min(left, block.count)
        for index in 0..<size {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            block[index] = UInt8(truncatingIfNeeded: state >> 33)
        }
        block.withUnsafeBytes { writeAll(1, UnsafeRawBufferPointer(rebasing: $0[0..<size])) }
        left -= size
    }
}

func copyStdin() {
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress!, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count < 0 { exit(1) }
        if count == 0 { return }
        buffer.withUnsafeBytes { writeAll(1, UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }
}

/// Starts `xn-testtask ARGUMENTS...` in this process group: posix_spawn's result, the pid in `child`.
func spawnSelf(_ arguments: [String], _ child: inout pid_t) -> Int32 {
    var argv: [UnsafeMutablePointer<CChar>?] = (["xn-testtask"] + arguments).map { strdup($0) }
    argv.append(nil)
    defer { argv.forEach { free($0) } }
    return posix_spawn(&child, "/proc/self/exe", nil, nil, argv, environ)
}

/// Starts `xn-testtask sleep 1000 MARKER` in this process group and records both pids in `pidFile`.
func spawnChild(pidFile: String, marker: String) -> Never {
    var child: pid_t = 0
    let rc = spawnSelf(["sleep", "1000", marker], &child)
    guard rc == 0 else { fail("posix_spawn: \(String(cString: strerror(rc)))", code: 1) }
    // Write then rename, so a reader never sees a half-written file.
    let temporary = pidFile + ".tmp"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { fail("open \(temporary): \(String(cString: strerror(errno)))", code: 1) }
    writeAll(fd, "\(getpid()) \(child)\n")
    close(fd)
    guard rename(temporary, pidFile) == 0 else { fail("rename: \(String(cString: strerror(errno)))", code: 1) }
    sleepSeconds(1000)
    exit(0)
}

let verb = argument(1, "verb")
let rest = Array(CommandLine.arguments.dropFirst(2))
switch verb {
case "exit":
    guard let code = Int32(argument(2, "N")) else { fail("N must be an integer") }
    exit(code)
case "sleep":
    sleepSeconds(seconds(2))
case "bytes":
    guard let count = Int(argument(2, "COUNT")), count >= 0, let seed = UInt64(argument(3, "SEED")) else {
        fail("COUNT and SEED must be non-negative integers")
    }
    writeBytes(count: count, seed: seed)
case "echo":
    writeAll(1, rest.joined(separator: " ") + "\n")
case "stderr":
    writeAll(2, rest.joined(separator: " ") + "\n")
case "cat":
    copyStdin()
case "forks":
    // Tries COUNT children that all stay alive (so the number held only grows), says how many
    // started, then waits: a process limit shows as the count.
    guard let count = Int(argument(2, "COUNT")) else { fail("COUNT must be an integer") }
    var child: pid_t = 0
    let made = (0..<count).filter { _ in spawnSelf(["sleep", "301"], &child) == 0 }.count
    writeAll(1, "made \(made)\n")
    sleepSeconds(301)
case "spin", "burn":
    // spin: keeps a CPU busy for SECONDS of wall-clock time (a CPU share shows as the CPU time it
    // got); burn: until it has used SECONDS of CPU time, however long that takes.
    let clock = verb == "spin" ? CLOCK_MONOTONIC : CLOCK_PROCESS_CPUTIME_ID
    func now() -> Double {
        var time = timespec()
        clock_gettime(clock, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
    let until = now() + seconds(2)
    var counter: UInt64 = 0
    while now() < until {
        for step in 0..<100_000 { counter &+= UInt64(step) }
    }
    if counter == 42 { writeAll(1, "") }
    writeAll(1, "spun\n")
case "connect":
    // Connects to 127.0.0.1:PORT: "connected", else the reason and exit status 1.
    guard let port = UInt16(argument(2, "PORT")) else { fail("PORT must be a port number") }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    if rc != 0 { fail("cannot connect: \(String(cString: strerror(errno)))", code: 1) }
    writeAll(1, "connected\n")
case "spawn-child":
    spawnChild(pidFile: argument(2, "PIDFILE"), marker: rest.count > 1 ? rest[1] : "")
case "ignore-term":
    let duration = seconds(2)
    signal(SIGTERM, SIG_IGN)
    writeAll(1, "ready\n")
    sleepSeconds(duration)
case "env":
    guard let value = getenv(argument(2, "NAME")) else { exit(1) }
    writeAll(1, String(cString: value) + "\n")
case "fds":
    // Every descriptor open in this process beyond 0-2, but the one reading the list.
    guard let folder = opendir("/proc/self/fd") else { fail("opendir: \(String(cString: strerror(errno)))", code: 1) }
    let own = dirfd(folder)
    var open: [String] = []
    while let entry = readdir(folder) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let fd = Int32(name), fd > 2, fd != own else { continue }
        var target = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
        let text = String(decoding: target.prefix(max(0, length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        open.append("\(fd) -> \(length > 0 ? text : "?")")
    }
    closedir(folder)
    writeAll(1, open.isEmpty ? "no descriptors beyond 0-2\n" : open.joined(separator: "\n") + "\n")
case "pwd":
    guard let cwd = getcwd(nil, 0) else { fail("getcwd: \(String(cString: strerror(errno)))", code: 1) }
    writeAll(1, String(cString: cwd) + "\n")
    free(cwd)
default:
    fail("unknown verb '\(verb)'\n\(usage)")
}
