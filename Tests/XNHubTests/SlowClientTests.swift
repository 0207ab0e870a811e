import Foundation
import Glibc
import Testing
import XNHub

/// Slow clients cannot hold the hub's connections: a request head that never ends and a reader
/// that never reads are cut off; idle long-polls and attaches are not.
@Suite(.timeLimit(.minutes(2)))
struct SlowClientTests {
    static func configure(_ configuration: inout TestHubSetup) {
        configuration.headerDeadline = .seconds(1)
        configuration.idleTimeout = .seconds(1)
        configuration.stallTimeout = .seconds(1)
        configuration.maxOutputBytes = 64 << 20
    }

    @Test func aRequestHeadThatNeverEndsIsCutOff() async throws {
        try await withHub(Self.configure) { hub in
            let slow = try RawConnection(port: hub.port)
            try slow.send("GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            let started = ContinuousClock.now
            #expect(try slow.readToEnd(timeout: .seconds(10)).isEmpty)
            #expect(ContinuousClock.now - started < .seconds(8))
            // A whole request on another connection is served as usual.
            #expect(try await hub.get("/v1/jobs").status == 200)
        }
    }

    @Test func aReaderThatNeverReadsIsCutOffButIdleWaitsAreNot() async throws {
        try await withHub(Self.configure) { hub in
            let size = 32 << 20
            let id = try await hub.submit(#"{"command":"head","args":["-c","\#(size)","/dev/zero"]}"#)
            #expect(try await hub.ended(id)["stdout_bytes"] as? Int == size)
            let stalled = try RawConnection(port: hub.port)
            try stalled.send("GET /v1/jobs/\(id)/stdout HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try await Task.sleep(for: .seconds(3))
            let received = try stalled.readToEnd(timeout: .seconds(20))
            #expect(received.count > 0 && received.count < size, "the hub gave up on it part way: \(received.count)")

            // A long-poll that waits longer than the idle timeout is answered.
            let sleeper = try await hub.submit(#"{"command":"sleep","args":["30"]}"#)
            let waited = try await hub.get("/v1/jobs/\(sleeper)?wait=2.5")
            #expect(waited.status == 200)
            // An attach with nothing to say for longer than the idle timeout stays open.
            _ = try await attach(hub, sleeper) { outbound, _ in
                try await Task.sleep(for: .seconds(2.5))
                try await outbound.write(.text(#"{"type":"terminate"}"#))
            }
            #expect(try await hub.ended(sleeper)["state"] as? String == "canceled")
        }
    }
}

/// A TCP connection to 127.0.0.1 driven byte by byte, for clients that misbehave on purpose.
final class RawConnection {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        // A small receive buffer, so a reader that does not read fills it soon.
        var small: Int32 = 64 << 10
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw TestFailure("cannot connect to 127.0.0.1:\(port)") }
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard Glibc.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
            throw TestFailure("send failed")
        }
    }

    /// One whole response with a Content-Length body (the connection may stay open).
    func readResponse(timeout: Duration) throws -> String {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while ContinuousClock.now < deadline {
            let text = String(decoding: received, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n"),
                let length = text[..<end.lowerBound].split(separator: "\r\n")
                    .first(where: { $0.lowercased().hasPrefix("content-length:") })
                    .flatMap({ Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }),
                text.utf8.count - text.utf8.distance(from: text.startIndex, to: end.upperBound) >= length
            {
                return text
            }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { throw TestFailure("closed before a whole response: \(text)") }
            received += buffer[..<count]
        }
        throw TestFailure("no whole response within \(timeout): \(String(decoding: received, as: UTF8.self))")
    }

    /// Everything until the peer closes; fails if it is still open after `timeout`.
    func readToEnd(timeout: Duration) throws -> [UInt8] {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return received }
            received += buffer[..<count]
        }
        throw TestFailure("the connection is still open after \(timeout)")
    }
}
