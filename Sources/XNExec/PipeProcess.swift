import CXNSystem
import Foundation
import Glibc
import Synchronization
import XNProtocol

/// A process started by `PipeExecutor`. The program's one `ProcessReactor` reads its pipes and
/// watches its pidfd, so output is read as soon as it is written and the exit is seen without a
/// SIGCHLD handler or a thread of its own.
final class PipeProcess: RunningProcess {
    let pid: Int32
    let output: ProcessOutput
    private let state = Mutex(WaitState())
    /// Where `send` queues input; nil when stdin was not kept open.
    private let input: InputQueue?
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
        reactor: ProcessReactor, pid: Int32, stdout: Int32, stderr: Int32, input: InputQueue?, outputLimit: Int,
        terminal: Int32 = -1, marker: String, cgroup: JobCgroup? = nil, show: ShowOutput? = nil
    ) {
        self.pid = pid
        self.marker = marker
        self.cgroup = cgroup
        self.input = input
        self.terminal = Mutex(terminal)
        self.hasTerminal = terminal >= 0
        let (stream, continuation) = AsyncStream.makeStream(of: OutputChunk.self)
        let id = ProcessWatch.makeID()
        let credits = OutputCredits(ProcessOutput.capacity) { reactor.post(.resume(id)) }
        continuation.onTermination = { _ in credits.abandon() }
        self.output = ProcessOutput(stream: stream, credits: credits)
        let watch = ProcessWatch(
            id: id, pid: pid, stdout: stdout, stderr: stderr, input: input, outputLimit: outputLimit,
            sink: OutputSink(continuation: continuation, credits: credits, show: show)
        ) { [self] result in
            self.ended(result, continuation)
        }
        reactor.post(.watch(watch))
    }

    /// On the reactor thread: the process ended and its output was handed over. The result is set
    /// before the output finishes, so a reader that reads the output to its end and then asks for
    /// the result finds it there instead of waiting to be woken again. What is left of
    /// the job is killed and its cgroup removed here when that is quick (nothing left, an empty
    /// group), else on a thread of its own, so the reactor never waits for a process to die.
    private func ended(_ result: ProcessResult, _ output: AsyncStream<OutputChunk>.Continuation) {
        var result = result
        if let cgroup, cgroup.members.isEmpty {
            // Nothing is left to count or kill: the end goes out first, the group's folders after
            // (removing them took a fifth of a short job's time with the cgroup v1 hierarchies).
            result.usage = cgroup.usage() ?? result.usage
            finish(result)
            output.finish()
            if !cgroup.removeIfEmpty() { removeOnThread(cgroup) }
            return
        }
        if cgroup == nil && !hasTerminal && kill(-pid, 0) != 0 {
            finish(result)
            output.finish()
            return
        }
        let thread = Thread { [self, result] in
            var result = result
            self.killLeftovers()
            if let cgroup = self.cgroup {
                // All the job's processes counted, not just the main one and what it waited for.
                result.usage = cgroup.usage() ?? result.usage
                cgroup.remove()
            }
            self.finish(result)
            output.finish()
        }
        thread.stackSize = 256 << 10
        thread.name = "xn-end-\(pid)"
        thread.start()
    }

    /// Waits (on a thread of its own) until a group that would not go yet can be removed.
    private func removeOnThread(_ cgroup: JobCgroup) {
        let thread = Thread { cgroup.remove() }
        thread.stackSize = 256 << 10
        thread.name = "xn-cgroup-\(pid)"
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
        guard let input else { throw InputError.closed }
        try input.send(bytes)
    }

    func closeInput() {
        input?.close()
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
