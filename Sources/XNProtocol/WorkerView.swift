/// A connected worker as `GET /v1/workers` shows it.
public struct WorkerView: Codable, Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    public var slots: Int
    public var running: Int
    public var connectedAt: String
    public var lastHeartbeat: String
    public var version: String
    public var draining: Bool

    enum CodingKeys: String, CodingKey {
        case name, labels, slots, running, version, draining
        case connectedAt = "connected_at", lastHeartbeat = "last_heartbeat"
    }

    public init(
        name: String, labels: [String: String], slots: Int, running: Int, connectedAt: Int64, lastHeartbeat: Int64,
        version: String, draining: Bool
    ) {
        self.name = name
        self.labels = labels
        self.slots = slots
        self.running = running
        self.connectedAt = Timestamp.format(connectedAt)
        self.lastHeartbeat = Timestamp.format(lastHeartbeat)
        self.version = version
        self.draining = draining
    }
}

/// The body of `GET /v1/workers`.
public struct WorkerList: Codable, Sendable, Equatable {
    public var workers: [WorkerView]

    public init(workers: [WorkerView]) {
        self.workers = workers
    }
}
