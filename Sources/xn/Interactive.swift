import CXNSystem
import Dispatch
import Foundation
import Glibc
import XNClient
import XNProtocol

/// The key that detaches from a job in a terminal session (Ctrl-]), as telnet and docker do.
let detachKey: UInt8 = 0x1d

/// The local terminal's size, when stdin is one.
func localTerminalSize() -> JobTerminal? {
    var rows: UInt16 = 0
    var cols: UInt16 = 0
    guard isatty(0) == 1, xn_terminal_size(0, &rows, &cols) == 0, rows > 0, cols > 0 else { return nil }
    return JobTerminal(rows: Int(rows), cols: Int(cols))
}

/// Connects this terminal (or this process's stdin and stdout) to a job until it ends or the user
/// detaches.
///
/// With a `tty` job and a terminal on stdin the terminal goes raw: every key, Ctrl-C included,
/// goes to the job, the window size follows SIGWINCH, Ctrl-] detaches, and the terminal mode is
/// restored however the session ends. Otherwise stdin is read a line at a time: lines go to an
/// interactive job, a line `/term` terminates the job, end of input closes the job's stdin.
func attachInteractively(
    hub: HubClient, job: JobView, readOnly: Bool
) async throws(ClientError) -> AttachEnd {
    let client = AttachClient(hub: hub, job: job.id, readOnly: readOnly)
    let raw = job.tty != nil && isatty(0) == 1 && !readOnly
    let terminal = raw ? RawTerminal() : nil
    defer { terminal?.restore() }
    var sources: [any DispatchSourceProtocol] = []
    defer { sources.forEach { $0.cancel() } }
    if raw {
        if let size = localTerminalSize() { client.send(.resize(rows: size.rows, cols: size.cols)) }
        signal(SIGWINCH, SIG_IGN)
        let resizes = DispatchSource.makeSignalSource(signal: SIGWINCH)
        resizes.setEventHandler {
            if let size = localTerminalSize() { client.send(.resize(rows: size.rows, cols: size.cols)) }
        }
        resizes.resume()
        sources.append(resizes)
        // Killed from outside: put the terminal back before going.
        for number in [SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler {
                terminal?.restore()
                exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
    }
    if !readOnly {
        let forwardsInput = job.interactive == true
        let reader = Thread {
            if raw { forwardKeys(to: client) } else { forwardLines(to: client, input: forwardsInput) }
        }
        reader.stackSize = 256 << 10
        reader.start()
    }
    let newline = raw ? "\r\n" : "\n"
    return try await client.run { event in
        switch event {
        case .output(.stdout, let bytes): writeAll(1, bytes)
        case .output(.stderr, let bytes): writeAll(2, bytes)
        case .problem(let message): writeAll(2, Array("xn: \(message)\(newline)".utf8))
        case .reconnecting(let why): writeAll(2, Array("xn: connection lost (\(why)), reconnecting\(newline)".utf8))
        }
    }
}

/// Raw keys to the job; Ctrl-] detaches.
private func forwardKeys(to client: AttachClient) {
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(0, &buffer, buffer.count)
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return }
        let keys = Array(buffer[0..<count])
        if let stop = keys.firstIndex(of: detachKey) {
            if stop > 0 { client.send(.input(Array(keys[..<stop]))) }
            client.send(.detach)
            return
        }
        client.send(.input(keys))
    }
}

/// Lines to the job (when it takes input); `/term` terminates it; end of input closes its stdin.
private func forwardLines(to client: AttachClient, input: Bool) {
    var pending: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    /// Passes one line on; false once it was `/term`.
    func line(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text == "/term" {
            client.send(.terminate)
            return false
        }
        if input { client.send(.input(bytes)) }
        return true
    }
    while true {
        let count = read(0, &buffer, buffer.count)
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        pending += buffer[0..<count]
        while let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
            guard line(Array(pending[...end])) else { return }
            pending.removeSubrange(...end)
        }
    }
    if !pending.isEmpty && !line(pending) { return }
    if input { client.send(.closeInput) }
}

/// Writes all of `bytes` to `fd`.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
        if written < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += written
    }
}

/// The local terminal in raw mode, put back as it was by `restore` (idempotent).
final class RawTerminal: @unchecked Sendable {
    private let lock = NSLock()
    private var original: termios?

    init() {
        var saved = termios()
        guard tcgetattr(0, &saved) == 0 else { return }
        var raw = saved
        cfmakeraw(&raw)
        guard tcsetattr(0, TCSANOW, &raw) == 0 else { return }
        original = saved
    }

    func restore() {
        lock.withLock {
            guard var saved = original else { return }
            tcsetattr(0, TCSANOW, &saved)
            original = nil
        }
    }
}
