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

    @Test("running can end in every terminal state, and only those", arguments: JobState.allCases)
    func runningEnds(next: JobState) {
        #expect(JobState.running.canMove(to: next) == next.isTerminal)
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
