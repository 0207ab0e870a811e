import XNProtocol

/// The hub's scheduling decisions as a pure state machine: events in, actions out. It owns the
/// head of the queue, the connected workers (the hub's own slots among them, as an in-process
/// worker), every attempt in flight and the input waiting for one; `Scheduler` feeds it events
/// and carries out its actions (store writes, messages to workers). It does no I/O and reads no
/// clock, so every rule here is tested without processes, sockets or a store.
///
///     submit ─┬─ (slot free, queue empty) ─▶ insert as assigned/running ─┐
///             └─ (else) ─▶ insert as queued ─▶ window ─▶ place ─▶ claim ─┤
///                                                                       ▼
///       assign ─▶ started ─▶ output stored (ack) … ─▶ ended ─▶ finish ─▶ forget, announce
///          │                                            │
///          └─ worker gone: wait `heartbeatTimeout` ─▶ lost ─┴─▶ requeue while retries last
///
/// The queue lives in the store; the machine holds its oldest `windowSize` jobs (what placing
/// needs of them, not their specs) and reloads when the window runs short. Counts for the queue
/// caps are kept here, so checking a cap and reserving a place is one step.
struct SchedulerMachine {
    /// Fixed settings.
    struct Settings {
        /// A worker silent or away this long is lost (milliseconds).
        var heartbeatTimeout: Int64 = 5000
        /// How the timeout reads in messages ("5.0 seconds").
        var heartbeatTimeoutText = "5 seconds"
        /// At most this many jobs wait queued (nil: no limit).
        var maxQueued: Int?
        /// Queued jobs held in memory for placement.
        var windowSize = 1024
        /// Bytes kept per output stream of a job, at most (`--max-output`).
        var maxOutputBytes = HubConfiguration.defaultMaxOutputBytes
    }

    enum Phase {
        /// Waiting for `recover`: nothing is placed.
        case recovering
        case running
        /// Shutting down: nothing new is placed.
        case draining
    }

    /// A connected worker (the hub's own slots included).
    struct Worker {
        let session: SessionID
        let name: String
        let labels: [String: String]
        let slots: Int
        let version: String
        /// The hub's own slots: their attempts are stored as running at once and need no acks.
        let inProcess: Bool
        /// The token it connected with (nil without tokens).
        let token: String?
        let connectedAt: Int64
        var lastSeen: Int64
        var draining = false
        var attempts: Set<AttemptToken> = []

        var freeSlots: Int { draining ? 0 : max(0, slots - attempts.count) }
    }

    /// One attempt of a job, from its placement until its end is stored.
    struct Attempt {
        let token: AttemptToken
        var job: QueuedJob
        var worker: String
        /// The worker's session while it is connected.
        var session: SessionID?
        let inProcess: Bool
        var phase: AttemptPhase
        /// Bytes of each stream stored: where the worker resumes after a reconnect.
        var stored: [OutputStreamKind: Int] = [:]
        /// Bytes kept per stream (set once the job's spec is known).
        var outputCap = 0
        /// Which attempt of the job this is (1 for the first), and the retries the job allows.
        var number = 1
        var retries = 0
        /// Why the hub stopped it (a cancel, output it could not store); wins over the runner's.
        var stop: StopReason?
        /// Its input was closed (`close_stdin`): typed bytes are refused from now on.
        var inputClosed = false
        /// When an attempt whose worker is away is declared lost.
        var deadline: Int64?
        /// Whether the store fences it by token (jobs from before tokens were not).
        var fenced = true

        /// Who ran it, in messages users read.
        var runner: String { inProcess ? "hub" : "worker \(worker)" }
        var retriesLeft: Bool { number <= retries }
    }

    enum AttemptPhase: Equatable {
        /// Being stored (a claim, or an insert that starts the job at once).
        case claiming
        case assigned
        case running
        /// Its end (or its return to the queue) is being stored; `retryAt` after a failed write.
        case closing(CloseAction, retryAt: Int64?)
    }

    /// What closing an attempt writes.
    enum CloseAction: Equatable {
        case finish(JobOutcome)
        case requeue(reason: String)
    }

    var settings: Settings
    var phase = Phase.recovering
    var workers: [SessionID: Worker] = [:]
    var attempts: [AttemptToken: Attempt] = [:]
    var attemptOfJob: [JobID: AttemptToken] = [:]
    /// The oldest queued jobs, oldest first.
    var window: [QueuedJob] = []
    /// The window holds every queued job the store has.
    var windowComplete = true
    var loadingQueue = false
    /// Queued jobs in the store, with places reserved by submissions being stored.
    var queued = QueueCounts()
    /// Queued jobs whose cancel is being stored.
    var canceling: [JobID: QueuedJob] = [:]
    /// Input for jobs whose process does not exist yet (queued, or being claimed).
    var pendingInput: [JobID: PendingInput] = [:]
    /// The time of the event being handled (milliseconds since the epoch), set by the driver:
    /// the machine reads no clock.
    var now: Int64 = 0
    var tokens: AttemptTokenSource

    init(settings: Settings, tokens: AttemptTokenSource = .random) {
        self.settings = settings
        self.tokens = tokens
    }
}

/// Where new attempt tokens come from: random in the hub, counted in tests.
enum AttemptTokenSource {
    case random
    case counting(from: UInt64)

    mutating func next() -> AttemptToken {
        switch self {
        case .random:
            return .random()
        case .counting(let value):
            self = .counting(from: value + 1)
            return AttemptToken(value)
        }
    }
}

typealias SessionID = UInt64

/// What the machine asks its driver to do.
enum SchedulerAction: Equatable {
    /// Store a new attempt of a queued job; report with `claimed` or `claimFailed`.
    case claim(AttemptToken, JobID, worker: String, state: JobState)
    /// Send a message to a worker.
    case send(SessionID, HubMessage)
    /// End a worker's link with a reason.
    case close(SessionID, reason: String)
    /// Store that an assigned attempt started (retried by the driver; harmless if it fails).
    case markStarted(JobID, AttemptToken)
    /// Store an attempt's end, only if the attempt is still the job's current one when `fenced`
    /// (jobs from before tokens are not); report with `finished` or `closeFailed`.
    case finish(JobID, AttemptToken, fenced: Bool, JobOutcome)
    /// Store a lost attempt's job as queued again; report with `requeued` or `closeFailed`.
    case requeue(JobID, AttemptToken, reason: String)
    /// Read the oldest queued jobs; report with `queueLoaded`.
    case loadQueue(limit: Int)
    /// A job ended and its end is stored: wake waiters, send the callback.
    case announce(JobRecord)
}

/// Input that waits for its job's process (or worker) to exist.
struct PendingInput {
    static let limit = 1 << 20
    var actions: [InputAction] = []
    var bytes = 0
}

/// What an attached client does to a running job's input.
enum InputAction: Sendable, Equatable {
    case bytes([UInt8])
    case close
    case resize(JobTerminal)

    var size: Int {
        if case .bytes(let bytes) = self { return bytes.count }
        return 16
    }

    func message(for token: AttemptToken) -> HubMessage {
        switch self {
        case .bytes(let bytes): .input(token, bytes)
        case .close: .closeInput(token)
        case .resize(let size): .resize(token, size)
        }
    }
}
