import CXNSystem
import Foundation
import Glibc
import Synchronization
import XNProtocol

/// A process started by `PipeExecutor`. One thread per process polls its pipes and its pidfd,
/// so output is read as soon as it is written and the exit is seen without a SIGCHLD handler.
final class PipeProcess: RunningProcess {
    let pid: Int32
    let output: ProcessOutput
    private let state = Mutex(WaitState())
    /// Where `send` queues input; nil when stdin was not kept open.
    private let live: InputQueue?
    /// A descriptor of the terminal's master for `resize`; -1 without a terminal or once ended.
    private let terminal: Mutex<Int32>
    private let hasTerminal: Bool
    /// `XN_JOB_ID=…`, inherited by every descendant: how escaped ones are found without a cgroup.
    private let marker: String
    /// The job's control group, when the executor has them: everything the job started is in
    /// it, whatever it did with its group, session or environment.
    private let cgroup: JobCgroup?

    private struct WaitState {
        var result: ProcessResult?
        var waiters: [UInt64: CheckedContinuation<ProcessResult?, Never>] = [:]
        var nextWaiter: UInt64 = 0
        /// Waiters whose timer won before they parked: they must not park at all.
        var abandoned: Set<UInt64> = []
    }

    init(
        pid: Int32, stdout: Int32, stderr: Int32, stdin: Int32?, input: [UInt8], outputLimit: Int,
        live: InputQueue? = nil, terminal: Int32 = -1, marker: String, cgroup: JobCgroup? = nil
    ) {
        self.pid = pid
        self.marker = marker
        self.cgroup = cgroup
        self.live = live
        self.terminal = Mutex(terminal)
        self.hasTerminal = terminal >= 0
        let (stream, continuation) = AsyncStream.makeStream(of: OutputChunk.self)
        let credits = OutputCredits(ProcessOutput.capacity)
        continuation.onTermination = { _ in credits.abandon() }
        self.output = ProcessOutput(stream: stream, credits: credits)
        let pump = OutputPump(
            pid: pid, stdout: stdout, stderr: stderr, stdin: stdin, input: input, live: live,
            isTerminal: terminal >= 0, outputLimit: outputLimit,
            sink: OutputSink(continuation: continuation, credits: credits))
        let thread = Thread { [self] in
            var result = pump.run()
            self.killLeftovers()
            if let cgroup = self.cgroup {
                // All the job's processes counted, not just the main one and what it waited for.
                result.usage = cgroup.usage() ?? result.usage
                cgroup.remove()
            }
            continuation.finish()
            self.finish(result)
        }
        thread.stackSize = 256 << 10
        thread.name = "xn-pump-\(pid)"
        thread.start()
    }

    func signal(_ signal: Int32) {
        // Once the process has ended, a stray KILL (a task cancelled after the end) must not pay for
        // a /proc sweep on every job; an explicit terminate always sweeps.
        deliver(signal, sweep: state.withLock { $0.result == nil })
    }

    /// A job does not outlive its process: what it left running in its group (a fork bomb's
    /// remains, a background job), its terminal's session, or that carries its marker, is killed
    /// once it ended. `kill(-pid, 0)` keeps the common case (nothing left) free of /proc scans.
    private func killLeftovers() {
        if let cgroup {
            if !cgroup.members.isEmpty { cgroup.signal(SIGKILL) }
            return
        }
        guard hasTerminal || kill(-pid, 0) == 0 else { return }
        deliver(SIGKILL, sweep: true)
    }

    func terminate(grace: Duration) async -> ProcessResult {
        deliver(SIGTERM, sweep: true)
        _ = await result(timeout: grace)
        // Always kill what is left: a grandchild may ignore SIGTERM or outlive its parent.
        deliver(SIGKILL, sweep: true)
        return await result()
    }

    private func deliver(_ signal: Int32, sweep: Bool) {
        _ = kill(-pid, signal)
        if signal == SIGTERM || signal == SIGKILL || signal == SIGHUP {
            if let cgroup {
                // The group holds every process of the job: no /proc sweep needed.
                if sweep || hasTerminal { cgroup.signal(signal) }
                return
            }
            guard sweep || hasTerminal else { return }
            // Ending the job ends all of it: a shell's background jobs live in process groups of
            // their own, and a daemon may have left the session; they carry the marker still.
            let session = hasTerminal ? ProcessTable.members(session: pid) : []
            let escaped = sweep ? ProcessTable.members(marked: marker) : []
            for member in Set(session + escaped) where member != getpid() {
                _ = kill(member, signal)
            }
            return
        }
        guard hasTerminal else { return }
        // Under a terminal a shell runs each command in a process group of its own: the one in
        // the foreground gets the signal too, as it would from a key typed at the terminal.
        let foreground = terminal.withLock { fd in fd >= 0 ? tcgetpgrp(fd) : -1 }
        if foreground > 0 && foreground != pid { _ = kill(-foreground, signal) }
    }

    func send(_ bytes: [UInt8]) throws(InputError) {
        guard let live else { throw InputError.closed }
        try live.send(bytes)
    }

    func closeInput() {
        live?.close()
    }

    func resize(_ size: TerminalSize) throws(InputError) {
        guard hasTerminal else { throw InputError.notATerminal }
        try terminal.withLock { fd throws(InputError) in
            guard fd >= 0 else { throw InputError.closed }
            _ = xn_resize_terminal(fd, size.rows, size.columns)
        }
    }

    func result() async -> ProcessResult {
        // A wait without a timeout only returns once the result exists.
        await wait(timeout: nil)!
    }

    func result(timeout: Duration) async -> ProcessResult? {
        await wait(timeout: timeout)
    }

    private func wait(timeout: Duration?) async -> ProcessResult? {
        let id: UInt64? = state.withLock { state in
            if state.result != nil { return nil }
            state.nextWaiter += 1
            return state.nextWaiter
        }
        guard let id else { return state.withLock { $0.result } }
        guard let timeout else { return await park(id) }
        return await withTaskGroup(of: ProcessResult?.self) { group in
            group.addTask { await self.park(id) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            // Wake the parked waiter if the timer won, so the group can end.
            let parked = self.state.withLock { state in
                let waiter = state.waiters.removeValue(forKey: id)
                if waiter == nil && state.result == nil { state.abandoned.insert(id) }
                return waiter
            }
            parked?.resume(returning: nil)
            return first ?? state.withLock { $0.result }
        }
    }

    /// Suspends until `finish` runs (or the waiter is removed and resumed with nil).
    private func park(_ id: UInt64) async -> ProcessResult? {
        await withCheckedContinuation { continuation in
            let done: ProcessResult?? = state.withLock { state in
                if let result = state.result { return .some(result) }
                if state.abandoned.remove(id) != nil { return .some(nil) }
                state.waiters[id] = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    private func finish(_ result: ProcessResult) {
        terminal.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
        let waiters = state.withLock { state in
            state.result = result
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters {
            waiter.resume(returning: result)
        }
    }
}

/// The blocking I/O loop behind a `PipeProcess`: feeds stdin, reads both streams, reaps the child.
private struct OutputPump: @unchecked Sendable {
    let pid: Int32
    var stdout: Int32
    var stderr: Int32
    var stdin: Int32?
    let input: [UInt8]
    /// Live input, when stdin is kept open; nil: stdin closes once `input` is written.
    let live: InputQueue?
    /// stdout is a terminal's master and stdin a second descriptor of it.
    let isTerminal: Bool
    let outputLimit: Int
    let sink: OutputSink

    /// After the child exits, how long to keep reading from pipes a grandchild may still hold.
    static let drainAfterExit: Double = 0.5
    static let chunkSize = 64 << 10

    func run() -> ProcessResult {
        var out = StreamState(fd: stdout, kind: .stdout)
        var err = StreamState(fd: stderr, kind: .stderr)
        var inputFD = stdin
        var pendingInput = input
        var inputOffset = 0
        // Without live input, stdin closes as soon as the initial input is written.
        var inputEnding = live == nil
        var listening = live != nil && stdin != nil
        var pidfd = xn_pidfd_open(pid)
        var termination: ProcessTermination?
        var usage: ResourceUsage?
        var exitTime = 0.0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 1)
        defer { buffer.deallocate() }
        for fd in [out.fd, err.fd, inputFD ?? -1] where fd >= 0 {
            _ = xn_set_nonblocking(fd)
        }
        func endInput() {
            if let fd = inputFD { close(fd) }
            inputFD = nil
            listening = false
            live?.markClosed()
        }
        var idle = false  // the last poll found nothing ready: pending bytes go out now
        while true {
            if termination != nil && out.fd < 0 && err.fd < 0 { break }
            if pidfd < 0 && termination == nil && out.fd < 0 && err.fd < 0 {
                (termination, usage) = reap(blocking: true)
                continue
            }
            var fds: [pollfd] = []
            if out.fd >= 0 { fds.append(pollfd(fd: out.fd, events: Int16(POLLIN), revents: 0)) }
            if err.fd >= 0 { fds.append(pollfd(fd: err.fd, events: Int16(POLLIN), revents: 0)) }
            if let fd = inputFD, inputOffset < pendingInput.count {
                fds.append(pollfd(fd: fd, events: Int16(POLLOUT), revents: 0))
            }
            if listening, let live { fds.append(pollfd(fd: live.wakeFD, events: Int16(POLLIN), revents: 0)) }
            if pidfd >= 0 && termination == nil {
                fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0))
            }
            var timeoutMS: Int32 = idle ? -1 : 0
            if termination != nil {
                let left = Self.drainAfterExit - (monotonicSeconds() - exitTime)
                if left <= 0 { break }
                timeoutMS = idle ? Int32(left * 1000) + 1 : 0
            }
            let ready = poll(&fds, nfds_t(fds.count), timeoutMS)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if ready == 0 {
                out.flush(sink)
                err.flush(sink)
                idle = true
                continue
            }
            idle = false
            for entry in fds where entry.revents != 0 {
                if entry.fd == out.fd {
                    out.read(into: buffer, limit: outputLimit, sink: sink)
                } else if entry.fd == err.fd {
                    err.read(into: buffer, limit: outputLimit, sink: sink)
                } else if entry.fd == inputFD {
                    if !writeInput(entry.fd, pendingInput, &inputOffset) {
                        endInput()
                    } else if inputOffset == pendingInput.count {
                        pendingInput = []
                        inputOffset = 0
                        if inputEnding { endInput() }
                    }
                } else if listening, let live, entry.fd == live.wakeFD {
                    let (bytes, close) = live.take()
                    pendingInput += bytes
                    if close {
                        listening = false
                        // A terminal has no end of input but the EOF character (Ctrl-D).
                        if isTerminal { pendingInput.append(4) } else { inputEnding = true }
                    }
                    if inputEnding && pendingInput.isEmpty { endInput() }
                } else if entry.fd == pidfd {
                    (termination, usage) = reap(blocking: true)
                    exitTime = monotonicSeconds()
                    close(pidfd)
                    pidfd = -1
                }
            }
        }
        out.flush(sink)
        err.flush(sink)
        out.closeIfOpen()
        err.closeIfOpen()
        endInput()
        if pidfd >= 0 { close(pidfd) }
        if termination == nil { (termination, usage) = reap(blocking: true) }
        return ProcessResult(
            termination: termination ?? .signaled(0), stdoutBytes: out.total, stderrBytes: err.total, usage: usage)
    }

    /// Writes what the pipe takes of the remaining input; false when the reader is gone.
    private func writeInput(_ fd: Int32, _ input: [UInt8], _ offset: inout Int) -> Bool {
        let written = input.withUnsafeBytes { raw in
            Glibc.write(fd, raw.baseAddress! + offset, input.count - offset)
        }
        if written < 0 { return errno == EAGAIN || errno == EINTR }
        offset += written
        return true
    }

    /// Waits for the process; its end, and the CPU time the kernel counted for it and the children
    /// it waited for. Not its peak memory: until exec the child shares (vfork) or copies (fork) the
    /// runner's memory, and the kernel's `ru_maxrss` counts that too; a cgroup measures it instead.
    private func reap(blocking: Bool) -> (ProcessTermination, ResourceUsage?) {
        var status: Int32 = 0
        var counted = rusage()
        while true {
            let rc = wait4(pid, &status, blocking ? 0 : WNOHANG, &counted)
            if rc == pid { break }
            if rc < 0 && errno == EINTR { continue }
            // Someone else reaped it (should not happen): report a lost status rather than hang.
            return (.signaled(0), nil)
        }
        let usage = ResourceUsage(
            userSeconds: Double(counted.ru_utime.tv_sec) + Double(counted.ru_utime.tv_usec) / 1e6,
            systemSeconds: Double(counted.ru_stime.tv_sec) + Double(counted.ru_stime.tv_usec) / 1e6,
            peakMemoryBytes: nil)
        let signal = status & 0x7f
        if signal == 0 { return (.exited((status >> 8) & 0xff), usage) }
        return (.signaled(signal), usage)
    }
}

/// One output pipe: what is buffered, how much it has written in all.
private struct StreamState {
    var fd: Int32
    let kind: OutputStreamKind
    var pending: [UInt8] = []
    var total = 0
    var kept = 0

    mutating func read(
        into buffer: UnsafeMutableRawBufferPointer, limit: Int, sink: OutputSink
    ) {
        let count = Glibc.read(fd, buffer.baseAddress!, buffer.count)
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
        if count <= 0 {
            flush(sink)
            closeIfOpen()
            return
        }
        total += count
        let keep = min(count, max(0, limit - kept))
        if keep > 0 {
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<keep]))
            kept += keep
        }
        if pending.count >= OutputPump.chunkSize { flush(sink) }
    }

    mutating func flush(_ sink: OutputSink) {
        guard !pending.isEmpty else { return }
        sink.hand(OutputChunk(stream: kind, bytes: pending))
        pending = []
    }

    mutating func closeIfOpen() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
    }
}

/// Where the pump hands chunks: waits for a credit first, so at most `capacity` chunks wait.
struct OutputSink: Sendable {
    let continuation: AsyncStream<OutputChunk>.Continuation
    let credits: OutputCredits

    func hand(_ chunk: OutputChunk) {
        credits.acquire()
        continuation.yield(chunk)
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
