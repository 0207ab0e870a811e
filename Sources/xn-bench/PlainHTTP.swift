import Foundation
import Glibc

/// A blocking HTTP/1.1 client on one kept-alive loopback connection, on a thread of its own: what
/// a request costs the hub with as little client as there can be (no event loop, no task hops),
/// the floor beside which AsyncHTTPClient's own share of a round trip shows.
final class PlainHTTP {
    private let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)

    init(port: Int) throws {
        fd = try Self.connectLoopback(port: port)
    }

    /// A blocking TCP connection to 127.0.0.1:`port` with TCP_NODELAY, whose reads give up after
    /// 30 s: a peer that never answers fails the run instead of holding it.
    static func connectLoopback(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var patience = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw BenchError("connect: \(String(cString: strerror(errno)))")
        }
        return fd
    }

    deinit { close(fd) }

    /// Sends one request and reads its whole response (Content-Length framed); returns the body.
    func request(_ method: String, _ path: String, body: String = "") throws -> String {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if !body.isEmpty { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + body
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress!, $0.count, 0) }) == bytes.count else {
            throw BenchError("send: \(String(cString: strerror(errno)))")
        }
        var received: [UInt8] = []
        while true {
            let got = recv(fd, &buffer, buffer.count, 0)
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                throw BenchError(
                    got == 0 ? "the hub closed the connection" : "no answer: \(String(cString: strerror(errno)))")
            }
            received += buffer[0..<got]
            guard let end = Self.headerEnd(received) else { continue }
            let head = String(decoding: received[0..<end], as: UTF8.self)
            guard
                let line = head.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") }),
                let length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
            else { throw BenchError("a response without Content-Length: \(head)") }
            if received.count >= end + 4 + length {
                return String(decoding: received[(end + 4)..<(end + 4 + length)], as: UTF8.self)
            }
        }
    }

    private static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }

    /// Runs `body` on a thread of its own, as a blocking client would, and returns its result.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try body() }) }
            thread.start()
        }
    }
}
