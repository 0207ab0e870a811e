/// What placing a queued job needs to know of it; the spec itself stays in the store until the
/// job is claimed, so a long queue costs little memory.
public struct QueuedJob: Sendable, Equatable {
    public var id: JobID
    /// Submission order: the queue runs oldest first.
    public var seq: Int64
    public var labels: [String: String]
    /// The token that submitted it (its queue cap).
    public var owner: String?
    /// Its stdin stays open for typed input (input typed before it starts is kept for it).
    public var keepsInputOpen: Bool
    /// It runs in a terminal (it can be resized).
    public var hasTerminal: Bool
    /// When it was submitted (ms since the epoch), for the time it waited.
    public var createdAt: Int64

    public init(
        id: JobID, seq: Int64, labels: [String: String], owner: String?, keepsInputOpen: Bool,
        hasTerminal: Bool = false,
        createdAt: Int64 = 0
    ) {
        self.id = id
        self.seq = seq
        self.labels = labels
        self.owner = owner
        self.keepsInputOpen = keepsInputOpen
        self.hasTerminal = hasTerminal
        self.createdAt = createdAt
    }

    public init(_ record: JobRecord) {
        self.init(
            id: record.id, seq: record.seq, labels: record.spec.labels, owner: record.owner,
            keepsInputOpen: record.spec.keepsInputOpen, hasTerminal: record.spec.tty != nil,
            createdAt: record.createdAt)
    }
}

/// Jobs waiting in the queue, in all and per submitting token.
public struct QueueCounts: Sendable, Equatable {
    public var total: Int
    public var byOwner: [String: Int]

    public init(total: Int = 0, byOwner: [String: Int] = [:]) {
        self.total = total
        self.byOwner = byOwner
    }
}
