/// One recorded attach session in `GET /v1/jobs/ID/transcripts`.
public struct TranscriptView: Codable, Sendable, Equatable {
    public var session: Int64
    /// The token that attached; nil on a hub without tokens.
    public var token: String?
    public var peer: String
    public var startedAt: String
    public var endedAt: String?
    public var events: Int

    enum CodingKeys: String, CodingKey {
        case session, token, peer, events
        case startedAt = "started_at", endedAt = "ended_at"
    }

    public init(session: Int64, token: String?, peer: String, startedAt: String, endedAt: String?, events: Int) {
        self.session = session
        self.token = token
        self.peer = peer
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.events = events
    }
}

/// The body of `GET /v1/jobs/ID/transcripts`.
public struct TranscriptList: Codable, Sendable, Equatable {
    public var transcripts: [TranscriptView]

    public init(transcripts: [TranscriptView]) {
        self.transcripts = transcripts
    }
}
