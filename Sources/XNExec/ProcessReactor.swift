import CXNSystem
import Foundation
import Glibc
import Synchronization

/// One thread that waits, with epoll, on every running process's pipes, terminal, pidfd and input
/// wake-up, instead of a thread per process: starting a job creates no thread, and a keystroke or
/// a piece of output wakes one thread that already waits. It lives as long as the program, like
/// NIO's event loops, idle in `epoll_wait` while nothing runs.
final class ProcessReactor: Sendable {
    /// The program's reactor, or why there is none (no epoll or eventfd left: EMFILE, ENOMEM).
    static let shared: Result<ProcessReactor, SpawnError> = {
        let epoll = xn_epoll_create()
        guard epoll >= 0 else { return .failure(failure("epoll_create1")) }
        let wake = xn_eventfd()
        guard wake >= 0 else {
            close(epoll)
            return .failure(failure("eventfd"))
        }
        let rc = xn_epoll_control(epoll, 0, wake, xn_epoll_in, ReactorLoop.wakeToken)
        guard rc == 0 else {
            close(epoll)
            close(wake)
            return .failure(SpawnError(code: rc, description: "epoll_ctl: \(String(cString: strerror(rc)))"))
        }
        return .success(ProcessReactor(epoll: epoll, wake: wake))
    }()

    /// What other threads ask of the reactor thread.
    enum Request: Sendable {
        /// Start watching a process that was just spawned.
        case watch(ProcessWatch)
        /// The consumer of a process's output read a chunk after the reactor ran out of credits.
        case resume(UInt64)
        /// A process without a pidfd has exited (seen by a waiter thread): reap it.
        case exited(UInt64)
    }

    private let epoll: Int32
    private let wake: Int32
    private let inbox = Mutex<[Request]>([])

    private init(epoll: Int32, wake: Int32) {
        self.epoll = epoll
        self.wake = wake
        let thread = Thread { [self] in
            ReactorLoop(reactor: self, epoll: epoll, wake: wake).run()
        }
        thread.stackSize = 512 << 10
        thread.name = "xn-reactor"
        thread.start()
    }

    /// Hands `request` to the reactor thread; wakes it unless an earlier request already did.
    func post(_ request: Request) {
        let first = inbox.withLock { inbox in
            inbox.append(request)
            return inbox.count == 1
        }
        guard first else { return }
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    /// For the reactor thread, after it read its wake-up: every request posted since the last call.
    fileprivate func takeRequests() -> [Request] {
        inbox.withLock { inbox in
            defer { inbox = [] }
            return inbox
        }
    }

    private static func failure(_ call: String) -> SpawnError {
        SpawnError(code: errno, description: "\(call): \(String(cString: strerror(errno)))")
    }
}

/// The reactor thread's own state: the watched processes, the buffer every read goes through, and
/// which processes need a look once the events of a round are handled.
final class ReactorLoop {
    /// The token of the reactor's own wake-up eventfd; a process's tokens are `id << 3 | role`.
    static let wakeToken: UInt64 = .max
    /// The most one read takes, and the size of a chunk handed over. Each chunk costs a hand-off,
    /// a store write and a frame: 64 KiB chunks held a 1 GiB job's attached client to 200-270
    /// MB/s, 256 KiB ones (with pipes grown to match) gave 475-620 MB/s.
    static let readSize = 256 << 10

    let epoll: Int32
    private let reactor: ProcessReactor
    private let wake: Int32
    private var watches: [UInt64: ProcessWatch] = [:]
    /// Incremented per `epoll_wait`: a process that read in this round keeps gathering output.
    private(set) var round: UInt64 = 0
    /// Processes holding output they read: handed over once a round reads nothing more of them.
    var gathering: Set<UInt64> = []
    /// Processes that exited while something may still write to their pipes (a grandchild).
    var draining: Set<UInt64> = []
    /// Processes that may have just ended: checked after the round.
    var changed: Set<UInt64> = []
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ReactorLoop.readSize, alignment: 16)

    init(reactor: ProcessReactor, epoll: Int32, wake: Int32) {
        self.reactor = reactor
        self.epoll = epoll
        self.wake = wake
    }

    func run() {
        var tokens = [UInt64](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        while true {
            let count = xn_epoll_wait(epoll, &tokens, &events, Int32(tokens.count), timeout())
            if count < 0 && errno != EINTR {
                // Only a broken epoll descriptor gets here; keep the thread from spinning on it.
                usleep(10_000)
                continue
            }
            round &+= 1
            let ready = Int(max(count, 0))
            if tokens[0..<ready].contains(Self.wakeToken) {
                var value: UInt64 = 0
                _ = read(wake, &value, 8)
            }
            for request in reactor.takeRequests() { handle(request) }
            for index in 0..<ready where tokens[index] != Self.wakeToken {
                let token = tokens[index]
                guard let watch = watches[token >> 3], let role = ProcessWatch.Role(rawValue: token & 7) else {
                    continue
                }
                watch.handle(role, in: self)
            }
            afterRound()
        }
    }

    private func handle(_ request: ProcessReactor.Request) {
        switch request {
        case .watch(let watch):
            watches[watch.id] = watch
            watch.register(in: self)
            changed.insert(watch.id)
        case .resume(let id):
            watches[id]?.resume(in: self)
        case .exited(let id):
            watches[id]?.reap(in: self)
        }
    }

    /// Hands over output of processes that read nothing this round, closes the pipes of processes
    /// whose drain time is up, and ends the processes that are done.
    private func afterRound() {
        for id in gathering {
            guard let watch = watches[id] else {
                gathering.remove(id)
                continue
            }
            if watch.lastRead != round && watch.flushOutput(in: self) { gathering.remove(id) }
        }
        if !draining.isEmpty {
            let now = monotonicSeconds()
            for id in draining {
                guard let watch = watches[id] else {
                    draining.remove(id)
                    continue
                }
                if watch.drainEnds <= now { watch.stopDraining(in: self) }
            }
        }
        guard !changed.isEmpty else { return }
        for id in changed {
            guard let watch = watches[id], watch.isDone else { continue }
            watches[id] = nil
            gathering.remove(id)
            draining.remove(id)
            watch.end(in: self)
        }
        changed = []
    }

    /// 0 while output waits to be handed over (is more coming at once?), else until the nearest
    /// drain ends, else forever.
    private func timeout() -> Int32 {
        if !gathering.isEmpty { return 0 }
        guard !draining.isEmpty else { return -1 }
        let now = monotonicSeconds()
        var nearest = Double.infinity
        for id in draining {
            if let watch = watches[id], !watch.stalled { nearest = min(nearest, watch.drainEnds) }
        }
        guard nearest.isFinite else { return -1 }
        return Int32(max(0, (nearest - now) * 1000).rounded(.up)) + 1
    }

    /// Adds, changes or removes `fd`'s interest; 0 or an errno value.
    @discardableResult
    func control(_ operation: Int32, _ fd: Int32, events: UInt32 = 0, token: UInt64 = 0) -> Int32 {
        xn_epoll_control(epoll, operation, fd, events, token)
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
