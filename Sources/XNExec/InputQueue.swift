import CXNSystem
import Glibc
import Synchronization

/// A process's stdin (or its terminal), shared by whoever sends input and the reactor. A keystroke
/// is written at once, from the sender's thread, when nothing waits before it and the descriptor
/// takes it; what it does not take waits here until the reactor sees room. Only the reactor ends
/// input and closes the descriptor, since it owns the descriptor's place in the epoll set.
final class InputQueue: Sendable {
    /// Bytes that may wait unread; beyond it `send` refuses rather than grow without bound.
    static let limit = 4 << 20

    /// What the reactor does next with the input descriptor.
    enum Next: Equatable {
        /// Nothing waits: leave it out of the epoll set.
        case idle
        /// Bytes wait for room: watch it for writability.
        case waitForRoom
        /// Input is over (all written and closing, or the reader is gone): `markClosed` it.
        case end
    }

    private struct State {
        var pending: [UInt8]
        var offset = 0
        /// `send` takes bytes (stdin was kept open for live input).
        var accepting: Bool
        /// Input ends once `pending` is written (a pipe's stdin without live input, or closed).
        var ending: Bool
        var closeRequested = false
        var closed = false
        /// The reactor waits for room: only it writes until it has written everything.
        var waitingForRoom = false
        /// A write failed (the reader closed its end): input is over.
        var broken = false
    }

    private let state: Mutex<State>
    /// The process's stdin: a pipe's write end, or a second descriptor of the terminal's master.
    let fd: Int32
    /// Wakes the reactor for a close or for bytes the descriptor did not take; -1 without live input.
    let wakeFD: Int32
    /// A terminal ends input with the EOF character (Ctrl-D) instead of closing.
    private let isTerminal: Bool

    /// Takes `fd` (non-blocking from here on) with `initial` to write first; with `live`, later
    /// `send`s are taken too, unless no eventfd could be made (see `isLive`).
    init(fd: Int32, initial: [UInt8], live: Bool, isTerminal: Bool) {
        self.fd = fd
        self.isTerminal = isTerminal
        _ = xn_set_nonblocking(fd)
        let wake = live ? xn_eventfd() : -1
        wakeFD = wake
        state = Mutex(State(pending: initial, accepting: wake >= 0, ending: wake < 0))
    }

    /// Whether `send` and `close` reach the process (false when live input was asked for and no
    /// eventfd could be made: the process then gets only its initial input).
    var isLive: Bool { wakeFD >= 0 }

    func send(_ bytes: [UInt8]) throws(InputError) {
        let wake = try state.withLock { state throws(InputError) -> Bool in
            if state.closed || state.closeRequested || !state.accepting || state.broken { throw InputError.closed }
            if state.pending.count - state.offset + bytes.count > Self.limit { throw InputError.full }
            state.pending += bytes
            // While the reactor waits for room it writes everything; else write now.
            if state.waitingForRoom { return false }
            Self.write(fd, &state)
            return state.broken || state.offset < state.pending.count
        }
        if wake { Self.wake(wakeFD) }
    }

    func close() {
        let wake = state.withLock { state in
            guard !state.closed && !state.closeRequested && state.accepting else { return false }
            state.closeRequested = true
            return true
        }
        if wake { Self.wake(wakeFD) }
    }

    /// For the reactor, on a wake-up, on room to write, or first of all: applies a close
    /// request, writes what the descriptor takes, and says what to do next.
    func service() -> Next {
        if wakeFD >= 0 {
            var count: UInt64 = 0
            _ = read(wakeFD, &count, 8)
        }
        return state.withLock { state in
            if state.closed { return .end }
            if state.closeRequested && state.accepting {
                state.accepting = false
                // A terminal has no end of input but the EOF character.
                if isTerminal { state.pending.append(4) } else { state.ending = true }
            }
            Self.write(fd, &state)
            if state.broken { return .end }
            state.waitingForRoom = state.offset < state.pending.count
            if state.waitingForRoom { return .waitForRoom }
            return state.ending ? .end : .idle
        }
    }

    /// For the reactor, once, after it took the descriptors out of the epoll set: input is over,
    /// the descriptors are closed, and later sends throw `.closed`.
    func markClosed() {
        state.withLock { state in
            guard !state.closed else { return }
            state.closed = true
            state.pending = []
            state.offset = 0
            Glibc.close(fd)
            if wakeFD >= 0 { Glibc.close(wakeFD) }
        }
    }

    /// Writes what `fd` takes of the pending bytes; marks the input broken when the reader is gone.
    private static func write(_ fd: Int32, _ state: inout State) {
        while state.offset < state.pending.count {
            let written = state.pending.withUnsafeBytes { raw in
                Glibc.write(fd, raw.baseAddress! + state.offset, raw.count - state.offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN { state.broken = true }
                return
            }
            state.offset += written
        }
        state.pending = []
        state.offset = 0
    }

    private static func wake(_ fd: Int32) {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }
}
