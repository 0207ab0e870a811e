import Foundation
import Glibc

/// The floors under every crossing a request or a keystroke makes: one thread waking another
/// (a pipe), and a byte across a loopback TCP connection between two threads. Each is timed
/// as a round trip, two crossings; a path's step table divides by them.
enum HandOff {
    /// A byte of ping-pong between two threads over two pipes, each thread blocked in `read`
    /// for the other.
    static func threadRoundTrip(iterations: Int) throws -> Sample {
        var ping: [Int32] = [0, 0]
        var pong: [Int32] = [0, 0]
        guard pipe(&ping) == 0, pipe(&pong) == 0 else { throw BenchError("pipe: \(String(cString: strerror(errno)))") }
        defer { for fd in ping + pong { close(fd) } }
        let (pingRead, pingWrite, pongRead, pongWrite) = (ping[0], ping[1], pong[0], pong[1])
        let echo = Thread {
            var byte: UInt8 = 0
            while read(pingRead, &byte, 1) == 1 {
                guard write(pongWrite, &byte, 1) == 1, byte == 0 else { return }  // 1: the last one
            }
        }
        echo.start()
        return try roundTrips(iterations) { last in
            var byte: UInt8 = last ? 1 : 0
            guard write(pingWrite, &byte, 1) == 1, read(pongRead, &byte, 1) == 1 else {
                throw BenchError("pipe: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// A byte sent over loopback TCP (TCP_NODELAY) to a thread that sends it back.
    static func loopbackRoundTrip(iterations: Int) throws -> Sample {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard bound else { throw BenchError("listen: \(String(cString: strerror(errno)))") }
        let echo = Thread {
            let peer = accept(listener, nil, nil)
            guard peer >= 0 else { return }
            defer { close(peer) }
            var one: Int32 = 1
            setsockopt(peer, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            var byte: UInt8 = 0
            while recv(peer, &byte, 1, 0) == 1 {
                guard send(peer, &byte, 1, 0) == 1 else { return }
            }
        }
        echo.start()
        let client = try PlainHTTP.connectLoopback(port: Int(UInt16(bigEndian: address.sin_port)))
        defer { close(client) }
        return try roundTrips(iterations) { _ in
            var byte: UInt8 = 42
            guard send(client, &byte, 1, 0) == 1, recv(client, &byte, 1, 0) == 1 else {
                throw BenchError("loopback: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Times `iterations` round trips after 100 unmeasured ones; `trip(true)` is the last.
    private static func roundTrips(_ iterations: Int, _ trip: (_ last: Bool) throws -> Void) throws -> Sample {
        for _ in 0..<100 { try trip(false) }
        var durations: [Double] = []
        durations.reserveCapacity(iterations)
        let began = now()
        for index in 0..<iterations {
            let start = now()
            try trip(index == iterations - 1)
            durations.append(now() - start)
        }
        return Sample(durations: durations, wall: now() - began)
    }
}
