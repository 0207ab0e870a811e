import Testing
import XNProtocol

@Suite("JobState")
struct JobStateTests {
    static let terminal: [JobState] = [.succeeded, .failed, .canceled, .timedOut, .lost]

    @Test("exactly the ended states are terminal")
    func terminalStates() {
        #expect(JobState.allCases.filter(\.isTerminal) == Self.terminal)
    }

    @Test("a terminal state never moves", arguments: terminal)
    func terminalNeverMoves(state: JobState) {
        for next in JobState.allCases {
            #expect(!state.canMove(to: next), "\(state) -> \(next)")
        }
    }

    @Test(
        "running can end in every terminal state or go back to the queue, and nothing else",
        arguments: JobState.allCases)
    func runningEnds(next: JobState) {
        #expect(JobState.running.canMove(to: next) == (next.isTerminal || next == .queued))
    }

    /// Every move the store makes: placing, starting, a lost attempt's retry, an end.
    @Test("the legal moves are exactly the ones the store makes")
    func everyMove() {
        var legal: Set<String> = [
            "queued>assigned", "queued>running", "queued>canceled", "assigned>running",
            "assigned>queued", "running>queued",
        ]
        for end in Self.terminal {
            legal.insert("assigned>\(end.rawValue)")
            legal.insert("running>\(end.rawValue)")
        }
        for from in JobState.allCases {
            for to in JobState.allCases {
                #expect(from.canMove(to: to) == legal.contains("\(from.rawValue)>\(to.rawValue)"), "\(from) -> \(to)")
            }
        }
        #expect(JobState.queued.sources == [.assigned, .running])
        #expect(JobState.canceled.sources == [.queued, .assigned, .running])
    }

    @Test("a queued job cannot succeed, time out or be lost without running")
    func queuedCannotFinishAlone() {
        #expect(!JobState.queued.canMove(to: .succeeded))
        #expect(!JobState.queued.canMove(to: .timedOut))
        #expect(!JobState.queued.canMove(to: .lost))
        #expect(JobState.queued.canMove(to: .running))
        #expect(JobState.queued.canMove(to: .canceled))
    }

    @Test("timed_out is the wire name of timedOut")
    func wireName() {
        #expect(JobState.timedOut.rawValue == "timed_out")
        #expect(JobState(rawValue: "timed_out") == .timedOut)
    }
}
