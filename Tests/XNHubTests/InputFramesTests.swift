import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import Synchronization
import Testing
import XNProtocol

/// Input typed into a job on a worker travels as binary frames to a worker that says it takes them,
/// and as `input` messages to one that does not (an older worker ignores binary frames).
@Suite(.timeLimit(.minutes(2)))
struct InputFramesTests {
    @Test(arguments: [true, false])
    func inputReachesAWorkerInTheFormItsHelloAsksFor(inputFrames: Bool) async throws {
        try await withHub({ $0.slots = 0 }) { hub in
            let received = ReceivedInput()
            let worker = Task {
                try await rawWorker(
                    hub, hello: WorkerHello(name: "raw", slots: 1, version: "t", inputFrames: inputFrames ? true : nil),
                    received: received)
            }
            defer { worker.cancel() }
            try await hub.waitForWorkers(["raw"])
            let id = try await hub.submit(#"{"command":"cat","interactive":true}"#)
            try await eventually("the job to run on the raw worker") {
                try await hub.state(id) == "running" ? true : nil
            }
            _ = try await attach(hub, id) { outbound, _ in
                try await outbound.write(.binary(ByteBuffer(bytes: [0x68, 0x69, 0x00, 0xff, 0x0a])))
                try await eventually("the input at the worker") { received.all.isEmpty ? nil : true }
            }
            let input = received.all
            #expect(input.map(\.bytes) == [[0x68, 0x69, 0x00, 0xff, 0x0a]])
            #expect(input.map(\.asFrame) == [inputFrames], "sent as \(inputFrames ? "a binary frame" : "a message")")
        }
    }
}

/// What input a raw worker was sent, and how.
final class ReceivedInput: Sendable {
    struct Input: Sendable {
        var bytes: [UInt8]
        var asFrame: Bool
    }

    private let inputs = Mutex<[Input]>([])
    var all: [Input] { inputs.withLock { $0 } }
    func add(_ input: Input) { inputs.withLock { $0.append(input) } }
}

/// A worker speaking the wire protocol by hand: says `hello`, reports every assigned attempt as
/// started, and records the input it is sent, until it is cancelled.
private func rawWorker(_ hub: TestHub, hello: WorkerHello, received: ReceivedInput) async throws {
    var fields = HTTPFields()
    fields[.secWebSocketProtocol] = WireProtocol.subprotocol
    let headers = fields
    let logger = Logger(label: "test.raw-worker") { _ in SwiftLogNoOpLogHandler() }
    @Sendable func text(_ message: WorkerMessage) throws -> String {
        String(decoding: try JSONEncoder().encode(message), as: UTF8.self)
    }
    _ = try await WebSocketClient.connect(
        url: "ws://127.0.0.1:\(hub.port)\(WireProtocol.workerPath)",
        configuration: .init(maxFrameSize: 4 << 20, additionalHeaders: headers), logger: logger
    ) { inbound, outbound, _ in
        try await outbound.write(.text(try text(.hello(hello))))
        for try await message in inbound.messages(maxSize: 4 << 20) {
            switch message {
            case .text(let json):
                switch try JSONDecoder().decode(HubMessage.self, from: Data(json.utf8)) {
                case .assign(let assignment):
                    try await outbound.write(
                        .text(try text(.started(AttemptStarted(attempt: assignment.attempt, pid: 1)))))
                case .input(_, let bytes):
                    received.add(.init(bytes: bytes, asFrame: false))
                default:
                    break
                }
            case .binary(let buffer):
                if let (_, bytes) = InputFrame.decode(buffer.readableBytesView) {
                    received.add(.init(bytes: bytes, asFrame: true))
                }
            }
        }
    }
}
