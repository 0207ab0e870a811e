/// Where a job's callback is: kept with the job from its submission until it is delivered or
/// given up, so a hub restart resumes it where it was.
public struct CallbackDelivery: Sendable, Equatable {
    public enum State: String, Sendable, Codable {
        /// Not delivered yet: waiting for the job's end, or for its next try.
        case pending
        case delivered
        /// Given up after the last attempt, or refused (an address the hub may not call).
        case failed
    }

    public var state: State
    /// Tries made so far.
    public var attempts: Int
    /// Why the last try failed (or the answer that delivered it).
    public var lastResult: String?
    /// Milliseconds since the epoch.
    public var lastAttemptAt: Int64?
    /// When the next try is due, while pending after a failed try.
    public var nextAttemptAt: Int64?

    public init(
        state: State = .pending, attempts: Int = 0, lastResult: String? = nil, lastAttemptAt: Int64? = nil,
        nextAttemptAt: Int64? = nil
    ) {
        self.state = state
        self.attempts = attempts
        self.lastResult = lastResult
        self.lastAttemptAt = lastAttemptAt
        self.nextAttemptAt = nextAttemptAt
    }
}

/// The delivery log as the v1 view shows it.
public struct CallbackDeliveryView: Sendable, Codable, Equatable {
    public var state: CallbackDelivery.State
    public var attempts: Int
    public var lastResult: String?
    public var lastAttemptAt: String?
    public var nextAttemptAt: String?

    enum CodingKeys: String, CodingKey {
        case state, attempts
        case lastResult = "last_result", lastAttemptAt = "last_attempt_at", nextAttemptAt = "next_attempt_at"
    }

    public init(_ delivery: CallbackDelivery) {
        state = delivery.state
        attempts = delivery.attempts
        lastResult = delivery.lastResult
        lastAttemptAt = delivery.lastAttemptAt.map(Timestamp.format)
        nextAttemptAt = delivery.nextAttemptAt.map(Timestamp.format)
    }
}
