/// Where a job is in its life.
///
///     queued ──▶ assigned ──▶ running ──▶ succeeded | failed | canceled | timed_out | lost
///        │           │                         ▲
///        └───────────┴──── canceled / failed ──┘   (never started)
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

    /// Whether the state machine allows going from `self` to `next`.
    public func canMove(to next: JobState) -> Bool {
        switch (self, next) {
        case (.queued, .assigned), (.queued, .running), (.assigned, .running): true
        case (.queued, .canceled), (.queued, .failed), (.assigned, .canceled), (.assigned, .failed),
            (.assigned, .lost), (.assigned, .queued):
            true
        case (.running, let end): end.isTerminal
        default: false
        }
    }
}
