import CXNSystem
import Foundation
import Glibc
import Synchronization
import XNProtocol

/// What the reactor keeps of one process: its descriptors, output read but not yet handed over,
/// input not yet written, and how it ended. Built by the thread that spawned the process; from
/// the moment it is posted to the reactor, only the reactor thread touches it.
final class ProcessWatch: @unchecked Sendable {
    /// Which descriptor of the process an event is for (the low bits of its epoll token).
    enum Role: UInt64 {
        case stdout = 0
        case stderr = 1
        case input = 2
        case inputWake = 3
        case exit = 4
    }

    private static let nextID = Atomic<UInt64>(1)
    /// After the child exits, how long to keep reading from pipes a grandchild may still hold.
    static let drainAfterExit: Double = 0.5

    let id: UInt64
    let pid: Int32
    /// stdout and stderr, indexed by their `Role`'s raw value.
    private var streams: [StreamState]
    /// The process's stdin, nil when it was closed at the start.
    private var input: InputQueue?
    /// Whether stdin is in the epoll set (only while input waits for room).
    private var inputArmed = false
    private let outputLimit: Int
    private let sink: OutputSink
    private var pidfd: Int32
    private var termination: ProcessTermination?
    private var usage: ResourceUsage?
    /// When to stop reading pipes a descendant still holds open after the process exited.
    private(set) var drainEnds = Double.infinity
    /// No credit was left for a chunk: the pipes are out of the epoll set until one comes back.
    private(set) var stalled = false
    /// The reactor round that last read output of this process.
    private(set) var lastRead: UInt64 = 0
    /// Called on the reactor thread once the process ended and its output was handed over.
    private let ended: @Sendable (ProcessResult) -> Void

    init(
        id: UInt64, pid: Int32, stdout: Int32, stderr: Int32, input: InputQueue?, outputLimit: Int,
        sink: OutputSink, ended: @escaping @Sendable (ProcessResult) -> Void
    ) {
        self.id = id
        self.pid = pid
        streams = [StreamState(fd: stdout, kind: .stdout), StreamState(fd: stderr, kind: .stderr)]
        self.input = input
        self.outputLimit = outputLimit
        self.sink = sink
        self.ended = ended
        pidfd = xn_pidfd_open(pid)
        for fd in [stdout, stderr] where fd >= 0 {
            _ = xn_set_nonblocking(fd)
        }
    }

    /// A new process's id, needed before its watch exists (its credits name it).
    static func makeID() -> UInt64 { nextID.add(1, ordering: .relaxed).oldValue }

    private func token(_ role: Role) -> UInt64 { id << 3 | role.rawValue }

    /// An output stream's epoll token: its index in `streams` is its role's raw value.
    private func token(_ stream: Int) -> UInt64 { id << 3 | UInt64(stream) }

    /// The indices of stdout and stderr in `streams`.
    private static let outputs = [Int(Role.stdout.rawValue), Int(Role.stderr.rawValue)]

    /// Puts the process's descriptors in the epoll set and writes what input it already has. A
    /// descriptor the kernel refuses to watch (ENOMEM, ENOSPC) would leave the process unattended:
    /// it is killed instead, and ends as killed.
    func register(in loop: ReactorLoop) {
        var refused = false
        for stream in Self.outputs where streams[stream].fd >= 0 {
            if loop.control(0, streams[stream].fd, events: xn_epoll_in, token: token(stream)) != 0 {
                refused = true
                closeStream(stream, in: loop, watched: false)
            }
        }
        if let input, input.wakeFD >= 0,
            loop.control(0, input.wakeFD, events: xn_epoll_in, token: token(.inputWake)) != 0
        {
            refused = true
            endInput(in: loop)
        }
        if pidfd >= 0 && loop.control(0, pidfd, events: xn_epoll_in, token: token(.exit)) != 0 {
            close(pidfd)
            pidfd = -1
        }
        if refused { _ = kill(-pid, SIGKILL) }
        if pidfd < 0 { waitWithoutPidfd() }
        writeInput(in: loop)
    }

    func handle(_ role: Role, in loop: ReactorLoop) {
        switch role {
        case .stdout, .stderr:
            guard !stalled else { return }
            read(Int(role.rawValue), in: loop)
        case .input, .inputWake:
            writeInput(in: loop)
        case .exit:
            reap(in: loop)
        }
    }

    private func read(_ stream: Int, in loop: ReactorLoop) {
        let fd = streams[stream].fd
        guard fd >= 0 else { return }
        // A stream that writes fast, with nothing gathered yet, is read straight into the chunk
        // handed over, not into the loop's buffer and then copied.
        var chunk: [UInt8]?
        var count = 0
        var readError: Int32 = 0
        if streams[stream].grown && streams[stream].pending.isEmpty {
            chunk = [UInt8](unsafeUninitializedCapacity: ReactorLoop.readSize) { buffer, initialized in
                count = Glibc.read(fd, buffer.baseAddress!, buffer.count)
                readError = errno
                initialized = max(0, count)
            }
        } else {
            count = Glibc.read(fd, loop.buffer.baseAddress!, loop.buffer.count)
            readError = errno
        }
        if count < 0 && (readError == EAGAIN || readError == EINTR) { return }
        if count <= 0 {
            // End of file, or EIO from a terminal whose last holder closed it.
            closeStream(stream, in: loop, watched: true)
            _ = flushOutput(in: loop)
            loop.changed.insert(id)
            return
        }
        lastRead = loop.round
        if count >= Pipe.defaultCapacity, !streams[stream].grown {
            // The pipe was full: the process writes fast, so let it fill a whole read between
            // wake-ups. Growing every job's pipes at its start cost short jobs 1% of a spawn.
            streams[stream].grown = true
            Pipe.grow(fd, to: ReactorLoop.readSize)
        }
        let gathered =
            if let chunk {
                streams[stream].take(chunk, limit: outputLimit, chunk: ReactorLoop.readSize)
            } else {
                streams[stream].take(
                    UnsafeRawBufferPointer(rebasing: loop.buffer[0..<count]), limit: outputLimit,
                    chunk: ReactorLoop.readSize)
            }
        if gathered {
            _ = flushOutput(in: loop)
        }
        if streams.contains(where: { !$0.pending.isEmpty }) { loop.gathering.insert(id) }
    }

    /// Hands what each stream gathered to the consumer. False when a chunk found no credit: the
    /// process's pipes then leave the epoll set, and `resume` goes on once a chunk was read.
    func flushOutput(in loop: ReactorLoop) -> Bool {
        guard !stalled else { return true }
        for stream in Self.outputs where !streams[stream].pending.isEmpty {
            guard sink.credits.tryAcquire() else {
                stall(in: loop)
                return false
            }
            let bytes = streams[stream].pending
            sink.show?(streams[stream].kind, streams[stream].handed, bytes)
            streams[stream].handed += bytes.count
            sink.continuation.yield(OutputChunk(stream: streams[stream].kind, bytes: bytes))
            streams[stream].pending = []
        }
        return true
    }

    private func stall(in loop: ReactorLoop) {
        stalled = true
        for stream in streams where stream.fd >= 0 {
            loop.control(2, stream.fd)
        }
    }

    /// A chunk was read after the process stalled: hand over what waits and read again.
    func resume(in loop: ReactorLoop) {
        guard stalled else { return }
        stalled = false
        for stream in Self.outputs where streams[stream].fd >= 0 {
            loop.control(0, streams[stream].fd, events: xn_epoll_in, token: token(stream))
        }
        if flushOutput(in: loop) { loop.changed.insert(id) }
    }

    /// Lets the input write what waits, and watches stdin for room while bytes are left; ends
    /// input once it is over.
    private func writeInput(in loop: ReactorLoop) {
        guard let input else { return }
        switch input.service() {
        case .idle:
            if inputArmed {
                loop.control(2, input.fd)
                inputArmed = false
            }
        case .waitForRoom:
            if !inputArmed {
                inputArmed = loop.control(0, input.fd, events: xn_epoll_out, token: token(.input)) == 0
                if !inputArmed { endInput(in: loop) }
            }
        case .end:
            endInput(in: loop)
        }
    }

    private func endInput(in loop: ReactorLoop) {
        guard let input else { return }
        // Out of the epoll set before closing: a terminal's stdin is a second descriptor of its
        // master, and epoll forgets a file only when all of its descriptors are closed.
        if inputArmed { loop.control(2, input.fd) }
        if input.wakeFD >= 0 { loop.control(2, input.wakeFD) }
        inputArmed = false
        input.markClosed()
        self.input = nil
    }

    private func closeStream(_ stream: Int, in loop: ReactorLoop, watched: Bool) {
        let fd = streams[stream].fd
        guard fd >= 0 else { return }
        // Removed before it is closed: a terminal's master has a second descriptor (stdin), and
        // epoll forgets a file only when all of its descriptors are closed.
        if watched && !stalled { loop.control(2, fd) }
        close(fd)
        streams[stream].fd = -1
    }

    /// The process exited: collect its status, then read what its pipes still hold for a while.
    func reap(in loop: ReactorLoop) {
        guard termination == nil else { return }
        if pidfd >= 0 {
            loop.control(2, pidfd)
            close(pidfd)
            pidfd = -1
        }
        (termination, usage) = Self.reap(pid)
        drainEnds = monotonicSeconds() + Self.drainAfterExit
        loop.draining.insert(id)
        loop.changed.insert(id)
    }

    /// The drain time is up: what is read so far is all of the output.
    func stopDraining(in loop: ReactorLoop) {
        guard !stalled else { return }
        loop.draining.remove(id)
        for stream in Self.outputs { closeStream(stream, in: loop, watched: true) }
        if flushOutput(in: loop) { loop.changed.insert(id) }
    }

    var isDone: Bool {
        termination != nil && !stalled && streams.allSatisfy { $0.fd < 0 && $0.pending.isEmpty }
    }

    /// Takes the process off the reactor and reports its end.
    func end(in loop: ReactorLoop) {
        endInput(in: loop)
        ended(
            ProcessResult(
                termination: termination ?? .signaled(0), stdoutBytes: streams[0].total, stderrBytes: streams[1].total,
                usage: usage))
    }

    /// Without a pidfd (a kernel before 5.3), a thread of its own waits for the exit, without
    /// reaping it, and tells the reactor.
    private func waitWithoutPidfd() {
        guard case .success(let reactor) = ProcessReactor.shared else { return }
        let pid = pid
        let id = id
        let thread = Thread {
            var info = siginfo_t()
            while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
            reactor.post(.exited(id))
        }
        thread.stackSize = 64 << 10
        thread.start()
    }

    /// Waits for the exited process; its end, and the CPU time the kernel counted for it and the
    /// children it waited for. Not its peak memory: until exec the child shares (vfork) or copies
    /// (fork) the runner's memory, and the kernel's `ru_maxrss` counts that too; a cgroup measures it.
    private static func reap(_ pid: Int32) -> (ProcessTermination, ResourceUsage?) {
        var status: Int32 = 0
        var counted = rusage()
        while true {
            let rc = wait4(pid, &status, 0, &counted)
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

/// One output stream of a process: its descriptor, what was read but not handed over, and how
/// much it wrote in all.
private struct StreamState {
    var fd: Int32
    let kind: OutputStreamKind
    var pending: [UInt8] = []
    /// Bytes handed to the consumer so far: the offset of the next chunk.
    var handed = 0
    var total = 0
    var kept = 0
    /// The pipe was asked to hold a whole read (`Pipe.grow`), once it was found full.
    var grown = false

    /// Counts `bytes`, keeps what fits under `limit`; true once a whole chunk is gathered.
    mutating func take(_ bytes: UnsafeRawBufferPointer, limit: Int, chunk: Int) -> Bool {
        total += bytes.count
        let keep = min(bytes.count, max(0, limit - kept))
        if keep > 0 {
            pending.append(contentsOf: bytes[0..<keep])
            kept += keep
        }
        return pending.count >= chunk
    }

    /// The same for bytes read into an array of their own while nothing was pending: kept as
    /// they are when all of them fit and they fill a good part of the array, else copied (a
    /// short read must not hold a whole read's capacity while it waits for the consumer).
    mutating func take(_ bytes: [UInt8], limit: Int, chunk: Int) -> Bool {
        if pending.isEmpty, bytes.count <= limit - kept, bytes.count >= Self.keptWhole {
            total += bytes.count
            kept += bytes.count
            pending = bytes
            return pending.count >= chunk
        }
        return bytes.withUnsafeBytes { take($0, limit: limit, chunk: chunk) }
    }

    /// Reads at least this long keep the array they were read into.
    static let keptWhole = 64 << 10
}

/// Where the reactor hands chunks, one credit each, so at most `ProcessOutput.capacity` wait.
struct OutputSink: Sendable {
    let continuation: AsyncStream<OutputChunk>.Continuation
    let credits: OutputCredits
    /// Sees each chunk first (`ProcessRequest.showOutput`).
    let show: ShowOutput?
}
