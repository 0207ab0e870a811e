import Logging
import XNProtocol

/// How the hub reaches one connected worker, whatever carries the messages: a WebSocket for a
/// remote worker, an in-memory stream for the hub's own slots.
protocol WorkerOutbox: Sendable {
    /// Queues a message; messages arrive in the order sent.
    func send(_ message: HubMessage)
    /// Ends the link, telling the worker why when the link can carry it.
    func close(reason: String)
}

/// The link to the hub's own slots: messages as plain values, no socket, no JSON.
struct InProcessOutbox: WorkerOutbox {
    let link: InProcessLink

    func send(_ message: HubMessage) {
        link.send(message)
    }

    func close(reason: String) {
        link.finish()
    }
}

/// What the hub's own slots report through: straight into the scheduler, as a remote worker's
/// messages arrive after they are decoded.
struct InProcessHost: HubInbox {
    let scheduler: Scheduler
    let session: SessionID

    func receive(_ message: WorkerMessage) async {
        if let problem = await scheduler.receive(message, from: session, inProcess: true) {
            // The in-process worker is ours: a problem here is a bug, not a bad peer.
            scheduler.logger.error("the hub's own slots: \(problem)")
        }
    }

    func receive(_ output: OutputPiece, shown: Bool) async {
        if let problem = await scheduler.store(output, from: session, shown: shown) {
            scheduler.logger.error("the hub's own slots: \(problem)")
        }
    }

    /// The bytes go to attached clients from the reactor's thread; the store gets them next.
    /// They are within the job's cap: the reactor keeps no more than the assignment allows.
    func show(job: JobID, _ stream: OutputStreamKind, offset: Int, bytes: [UInt8]) {
        scheduler.activity.output(job, stream, offset: offset, bytes: bytes)
    }
}

/// Worker sessions: what any link (WebSocket or in-process) reports goes through here.
extension Scheduler {
    /// A new link; its worker is known once its hello is accepted.
    func openSession(_ outbox: any WorkerOutbox, grant: WorkerGrant = .open) -> SessionID {
        nextSessionID += 1
        outboxes[nextSessionID] = outbox
        grants[nextSessionID] = grant
        return nextSessionID
    }

    /// The link ended (`expired`: it went silent past the heartbeat timeout).
    func sessionClosed(_ session: SessionID, expired: Bool) async {
        outboxes[session] = nil
        grants[session] = nil
        if let worker = machine.workers[session], !worker.inProcess {
            logger.info("worker \(worker.name) disconnected", metadata: ["worker": .string(worker.name)])
        }
        await event { $0.workerLeft(session, expired: expired) }
    }

    /// Handles one message from a worker; returns a problem that ends its link.
    func receive(_ message: WorkerMessage, from session: SessionID, inProcess: Bool = false) async -> String? {
        let known = machine.workers[session] != nil
        switch message {
        case .hello(let hello):
            guard !known else { return "hello sent twice" }
            let grant = grants[session] ?? .open
            if let refusal = grant.refusal(of: hello) {
                logger.warning("refused worker \(hello.name): \(refusal)", metadata: ["worker": .string(hello.name)])
                return refusal
            }
            await event { $0.workerJoined(session, hello, inProcess: inProcess, token: grant.token) }
            guard let worker = machine.workers[session] else { return nil }  // refused: the link is closing
            if !inProcess {
                logger.info(
                    "worker \(worker.name) connected: \(worker.slots) slot(s), labels \(worker.labels)",
                    metadata: ["worker": .string(worker.name)])
            }
            return nil
        case _ where !known:
            return "expected hello first"
        case .heartbeat:
            machine.now = Timestamp.now()
            machine.heartbeat(session)
        case .draining:
            machine.workerDraining(session)
            if let name = machine.workers[session]?.name {
                logger.info("worker \(name) is draining", metadata: ["worker": .string(name)])
            }
        case .started(let started):
            if let attempt = machine.attempts[started.attempt], attempt.session == session {
                metrics.jobStarted(waited: .milliseconds(Timestamp.now() - attempt.job.createdAt))
            }
            await event { $0.started(started.attempt, session: session) }
        case .ended(let ended):
            machine.now = Timestamp.now()
            let (problem, actions) = machine.ended(ended.attempt, ended.end, session: session)
            await perform(actions)
            return problem
        }
        return nil
    }

    /// Stores one piece of output at its offset (skipping what is already stored, dropping what
    /// is beyond the job's cap) and acknowledges it; returns a problem that ends the link.
    /// `shown`: attached clients were given the piece already (`HubInbox.show`).
    func store(_ piece: OutputPiece, from session: SessionID, shown: Bool = false) async -> String? {
        guard machine.workers[session] != nil else { return "expected hello first" }
        switch machine.outputTarget(piece.attempt, piece.stream, session: session) {
        case .stale:
            outboxes[session]?.send(.kill(piece.attempt, reason: SchedulerMachine.staleAttempt))
            return nil
        case .discard:
            break
        case .store(let job, let stored, let cap):
            let offset = piece.offset
            guard offset <= stored else {
                // The hub lost bytes it had acknowledged (its store rolled back in a crash of the
                // machine), and the worker let them go when they were acknowledged: the job's
                // output has a hole, so it stops and says so, and the link goes on.
                let lost =
                    "\(piece.stream.name) bytes \(stored) to \(offset) were lost (stored and acknowledged, then lost in a crash of the hub's machine)"
                logger.error("job \(job): \(lost); stopping it", metadata: ["job": .string(job.rawValue)])
                await event { $0.outputFailed(piece.attempt, lost) }
                return nil
            }
            let keepUpTo = min(offset + piece.bytes.count, cap)
            if keepUpTo > stored {
                let kept = piece.bytes[(stored - offset)..<(keepUpTo - offset)]
                if !shown { activity.output(job, piece.stream, offset: stored, bytes: Array(kept)) }
                do {
                    try await appendOutput(job, piece.stream, offset: stored, bytes: kept)
                } catch {
                    logger.error(
                        "cannot store output of job \(job); stopping it: \(error)",
                        metadata: ["job": .string(job.rawValue)])
                    await event { $0.outputFailed(piece.attempt, "\(error)") }
                    return nil
                }
                activity.stored(job, piece.stream, upTo: keepUpTo)
            }
        }
        await event { $0.outputStored(piece.attempt, piece.stream, upTo: piece.offset + piece.bytes.count) }
        return nil
    }
}
