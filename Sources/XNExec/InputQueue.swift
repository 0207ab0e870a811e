import CXNSystem
import Glibc
import Synchronization

/// Input for a running process, from any task to its pump thread: bytes wait here and an eventfd
/// wakes the pump, which writes them when the pipe or terminal takes them.
final class InputQueue: Sendable {
    /// Bytes that may wait unread; beyond it `send` refuses rather than grow without bound.
    static let limit = 4 << 20

    private struct State {
        var pending: [UInt8] = []
        var closeRequested = false
        /// The pump gave up on input (process gone, reader closed its end): no more sends.
        var closed = false
        var wakeFD: Int32
    }

    private let state: Mutex<State>
    /// Polled by the pump; valid until `markClosed`.
    let wakeFD: Int32

    init() throws(SpawnError) {
        let fd = xn_eventfd()
        guard fd >= 0 else {
            throw SpawnError(code: errno, description: "eventfd: \(String(cString: strerror(errno)))")
        }
        wakeFD = fd
        state = Mutex(State(wakeFD: fd))
    }

    func send(_ bytes: [UInt8]) throws(InputError) {
        try state.withLock { state throws(InputError) in
            if state.closed || state.closeRequested { throw InputError.closed }
            if state.pending.count + bytes.count > Self.limit { throw InputError.full }
            state.pending += bytes
            Self.wake(state.wakeFD)
        }
    }

    func close() {
        state.withLock { state in
            guard !state.closed && !state.closeRequested else { return }
            state.closeRequested = true
            Self.wake(state.wakeFD)
        }
    }

    /// For the pump: everything sent since the last call, and whether input should end after it.
    func take() -> (bytes: [UInt8], close: Bool) {
        var count: UInt64 = 0
        _ = read(wakeFD, &count, 8)
        return state.withLock { state in
            defer { state.pending = [] }
            return (state.pending, state.closeRequested)
        }
    }

    /// For the pump, once: input is over; later sends throw `.closed`.
    func markClosed() {
        state.withLock { state in
            guard !state.closed else { return }
            state.closed = true
            Glibc.close(state.wakeFD)
            state.wakeFD = -1
        }
    }

    private static func wake(_ fd: Int32) {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }
}
