import Foundation
import Testing
import XNProtocol

/// The wire formats, pinned by saved examples (Tests/XNProtocolTests/Fixtures): each line must
/// decode to the message written out here, and encoding that message must decode the same again.
@Suite("Wire format")
struct WireFormatTests {
    static let job = JobID("0123456789abcdef0123456789abcdef01234567")!
    static let other = JobID("89abcdef0123456789abcdef0123456789abcdef")!
    static let token = AttemptToken(0xa1)

    static func lines(_ name: String) throws -> [String] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name)
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }

    static func roundTrip<T: Codable & Equatable>(_ value: T) throws -> T {
        try JSONDecoder().decode(T.self, from: JSONEncoder().encode(value))
    }

    @Test("worker → hub messages")
    func workerMessages() throws {
        let expected: [WorkerMessage] = [
            .hello(
                WorkerHello(
                    name: "gpu-1", labels: ["gpu": "1"], slots: 4, version: "0.2.0",
                    attempts: [
                        HeldAttempt(attempt: Self.token, job: Self.job),
                        HeldAttempt(
                            attempt: AttemptToken(0xa2), job: Self.other, end: AttemptEnd(.exited(0), stdoutBytes: 3)),
                    ])),
            .hello(WorkerHello(name: "w", slots: 1, version: "0.3.0", inputFrames: true)),
            .heartbeat,
            .started(AttemptStarted(attempt: Self.token, pid: 4242)),
            .ended(AttemptEnded(attempt: Self.token, end: AttemptEnd(.exited(2), stdoutBytes: 10, stderrBytes: 5))),
            .ended(AttemptEnded(attempt: Self.token, end: AttemptEnd(.signaled(15), stop: .timedOut(seconds: 1.5)))),
            .ended(
                AttemptEnded(
                    attempt: Self.token, end: AttemptEnd(.notStarted("spawn nope ENOENT: No such file or directory")))),
            .ended(
                AttemptEnded(
                    attempt: Self.token, end: AttemptEnd(.notStarted("worker w is shutting down"), stop: .shutdown))),
            .ended(
                AttemptEnded(
                    attempt: Self.token,
                    end: AttemptEnd(.signaled(9), stop: .outputLost("spool: disk full"), stdoutBytes: 1))),
            .draining,
        ]
        let lines = try Self.lines("worker-to-hub.jsonl")
        #expect(lines.count == expected.count)
        for (line, message) in zip(lines, expected) {
            #expect(try Self.decode(WorkerMessage.self, line) == message, "\(line)")
            #expect(try Self.roundTrip(message) == message)
        }
    }

    @Test("hub → worker messages")
    func hubMessages() throws {
        let expected: [HubMessage] = [
            .welcome(Welcome(heartbeat: 1)),
            .refused(reason: "protocol mismatch"),
            .assign(
                Assignment(
                    attempt: Self.token, job: Self.job, spec: JobSpec(command: "sh", args: ["-c", "echo hi"]),
                    outputLimit: 16 << 20)),
            .ack(OutputAck(attempt: Self.token, stdout: 10, stderr: 0)),
            .forget(Self.token),
            .cancel(Self.token),
            .kill(Self.token, reason: "the hub no longer runs this attempt"),
            .signal(Self.token, 2),
            .input(Self.token, Array("hi\n".utf8)),
            .closeInput(Self.token),
            .resize(Self.token, JobTerminal(rows: 40, cols: 120)),
        ]
        let lines = try Self.lines("hub-to-worker.jsonl")
        #expect(lines.count == expected.count)
        for (line, message) in zip(lines, expected) {
            #expect(try Self.decode(HubMessage.self, line) == message, "\(line)")
            #expect(try Self.roundTrip(message) == message)
        }
    }

    @Test("messages that are not the protocol are refused, not guessed at")
    func refusals() {
        for text in [
            #"{"type":"hello"}"#, #"{"type":"launch"}"#, #"{"type":"started","attempt":"xyz","pid":1}"#,
            #"{"type":"ended","attempt":"00000000000000a1","end":{"stdout_bytes":0,"stderr_bytes":0}}"#,
            #"{"type":"ended","attempt":"00000000000000a1","end":{"exit_code":0,"stop":{"reason":"bored"},"stdout_bytes":0,"stderr_bytes":0}}"#,
        ] {
            #expect(throws: (any Error).self, "\(text)") { try Self.decode(WorkerMessage.self, text) }
        }
        #expect(throws: (any Error).self) {
            try Self.decode(HubMessage.self, #"{"type":"input","attempt":"00000000000000a1","data":"%%"}"#)
        }
    }

    @Test("attach: client requests")
    func attachRequests() throws {
        let expected: [AttachRequest] = [
            .resize(JobTerminal(rows: 40, cols: 120)), .signal("INT"), .signal("15"), .closeStdin, .terminate, .detach,
        ]
        let lines = try Self.lines("attach-client.jsonl")
        #expect(lines.count == expected.count)
        for (line, request) in zip(lines, expected) {
            #expect(AttachRequest.parse(line) == .success(request), "\(line)")
            #expect(AttachRequest.parse(request.text) == .success(request))
        }
        #expect(AttachRequest.parse("nope") == .failure(AttachProtocolError("messages are JSON objects with a type")))
        #expect(
            AttachRequest.parse(#"{"type":"resize","rows":0,"cols":5}"#)
                == .failure(AttachProtocolError("resize needs rows and cols from 1 to 1000")))
        #expect(
            AttachRequest.parse(#"{"type":"paste"}"#) == .failure(AttachProtocolError("unknown message type 'paste'")))
    }

    @Test("attach: hub notices")
    func attachNotices() throws {
        let lines = try Self.lines("attach-hub.jsonl")
        #expect(try Self.decode(AttachNotice.self, lines[0]) == .error("the job's input is closed"))
        let ended = AttachNotice.exit(JobView(JobRecord(id: Self.job, spec: JobSpec(command: "true"), createdAt: 0)))
        #expect(try Self.decode(AttachNotice.self, ended.text) == ended)
    }

    @Test("output frames: stream, attempt and offset big-endian, then the bytes")
    func outputFrame() {
        let piece = OutputPiece(
            attempt: AttemptToken(0x0102030405060708), stream: .stderr, offset: 0x1234, bytes: [0xff, 0])
        let frame: [UInt8] = [2, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0xff, 0]
        #expect(OutputFrame.encode(piece) == frame)
        #expect(OutputFrame.decode(frame) == piece)
        #expect(OutputFrame.decode([3] + frame.dropFirst()) == nil, "no stream 3")
        #expect(OutputFrame.decode(frame.prefix(16)) == nil, "a short header")
    }

    @Test("input frames: a tag, the attempt big-endian, then the bytes; never taken for output")
    func inputFrame() throws {
        let frame: [UInt8] = [0x10, 1, 2, 3, 4, 5, 6, 7, 8, 0x03, 0x1b, 0x5b, 0x41]
        #expect(InputFrame.encode(attempt: AttemptToken(0x0102030405060708), bytes: [3, 0x1b, 0x5b, 0x41]) == frame)
        let decoded = try #require(InputFrame.decode(frame))
        #expect(decoded.attempt == AttemptToken(0x0102030405060708))
        #expect(decoded.bytes == [3, 0x1b, 0x5b, 0x41])
        #expect(InputFrame.decode(frame.prefix(9))?.bytes == [], "an empty input is a header alone")
        #expect(InputFrame.decode(frame.prefix(8)) == nil, "a short header")
        #expect(OutputFrame.decode(frame) == nil, "an input frame is no output frame")
        let output = OutputFrame.encode(OutputPiece(attempt: AttemptToken(1), stream: .stdout, offset: 0, bytes: [1]))
        #expect(InputFrame.decode(output) == nil, "an output frame is no input frame")
    }
}
