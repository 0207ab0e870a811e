import Synchronization
import Testing
import XNProtocol

/// The hub's link to its own slots: input may skip the queue only when nothing waits before it,
/// so the worker sees every message in the order the hub sent it.
@Suite(.timeLimit(.minutes(1)))
struct InProcessLinkTests {
    let token = AttemptToken(7)

    /// A worker that carries out input at once and nothing else, and records what it carried out.
    final class Carrier: Sendable {
        let done = Mutex<[HubMessage]>([])
        func carry(_ message: HubMessage) -> Bool {
            guard case .input = message else { return false }
            done.withLock { $0.append(message) }
            return true
        }
    }

    @Test func inputSkipsTheQueueOnlyWhenNothingSentBeforeItWaits() async throws {
        let link = InProcessLink()
        let carrier = Carrier()
        link.carryOut { carrier.carry($0) }
        var queued = link.messages.makeAsyncIterator()

        link.send(.input(token, [1]))
        link.send(.cancel(token))
        // The cancel waits: input after it must not overtake it.
        link.send(.input(token, [2]))
        try #require(carrier.done.withLock { $0 } == [.input(token, [1])])
        #expect(await queued.next() == .cancel(token))
        link.handled()
        // Input 2 still waits: 3 queues behind it.
        link.send(.input(token, [3]))
        #expect(await queued.next() == .input(token, [2]))
        link.handled()
        #expect(await queued.next() == .input(token, [3]))
        link.handled()
        // Everything sent was handled: input goes straight through again.
        link.send(.input(token, [4]))

        #expect(carrier.done.withLock { $0 } == [.input(token, [1]), .input(token, [4])])
        link.finish()
        #expect(await queued.next() == nil)
    }

    @Test func withoutAWayToCarryOutEverythingIsQueuedInOrder() async {
        let link = InProcessLink()
        let sent: [HubMessage] = [.input(token, [1]), .closeInput(token), .cancel(token)]
        for message in sent { link.send(message) }
        link.finish()
        var received: [HubMessage] = []
        for await message in link.messages {
            received.append(message)
            link.handled()
        }
        #expect(received == sent)
    }
}
