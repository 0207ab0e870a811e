/// Where a job is in its life.
///
///     queued ──▶ assigned ──▶ running ──▶ succeeded | failed | canceled | timed_out | lost
///       │ ▲          │  │         │
///       │ └─ requeue ┴──┼─────────┘     (its runner was lost and retries are left)
///       │               └─▶ any end     (it ended before its start was recorded)
///       └──▶ canceled                   (canceled before it started)
///
/// A job is stored as queued, or as assigned or running when a slot was free at once.
/// `canMove(to:)` lists exactly the moves the store makes; it refuses every other.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, assigned, running, succeeded, failed, canceled
    case timedOut = "timed_out"
    case lost

    /// A terminal state never changes again.
    public var isTerminal: Bool {
        switch self {
        case .queued, .assigned, .running: false
        default: true
        }
    }

    /// The states a job may be stored in when it is created.
    public var isInitial: Bool { !isTerminal }

    /// Whether a job may go from `self` to `next`.
    public func canMove(to next: JobState) -> Bool {
        switch (self, next) {
        case (.queued, .assigned), (.queued, .running), (.queued, .canceled): true
        case (.assigned, .running), (.assigned, .queued), (.running, .queued): true
        case (.assigned, let end), (.running, let end): end.isTerminal
        default: false
        }
    }

    /// The states from which a job may move to `next`.
    public var sources: [JobState] {
        JobState.allCases.filter { $0.canMove(to: self) }
    }
}
