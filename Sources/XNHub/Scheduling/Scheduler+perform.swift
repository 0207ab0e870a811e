import Foundation
import Logging
import XNProtocol
import XNStore

/// Carrying out the machine's actions. No store error is dropped: each is logged with its job,
/// and the machine hears of it (a claim is tried again, an end is stored again after a pause).
extension Scheduler {
    func perform(_ actions: [SchedulerAction]) async {
        for action in actions { await perform(action) }
    }

    private func perform(_ action: SchedulerAction) async {
        switch action {
        case .send(let session, let message):
            outboxes[session]?.send(message)
        case .close(let session, let reason):
            logger.warning("closing worker link: \(reason)")
            outboxes[session]?.close(reason: reason)
        case .announce(let record):
            announce(record)
        case .claim(let token, let id, let worker, let state):
            do {
                let record = try await store.claim(id, worker: worker, token: token, state: state, at: Timestamp.now())
                await event { $0.claimed(token, record) }
                if let record { feed.publish(record) }
            } catch {
                logger.error(
                    "cannot start job \(id) on \(worker): \(error); it stays queued",
                    metadata: ["job": .string(id.rawValue)])
                await event { $0.claimFailed(token) }
            }
        case .markStarted(let id, let token):
            await markStarted(id, token)
        case .finish(let id, let token, let fenced, let outcome):
            do {
                let record = try await store.finish(id, outcome, token: fenced ? token : nil)
                await event { $0.finished(token, record) }
            } catch {
                logger.error(
                    "cannot record the end of job \(id) (\(outcome.state.rawValue)): \(error); retrying",
                    metadata: ["job": .string(id.rawValue)])
                machine.now = Timestamp.now()
                machine.closeFailed(token)
            }
        case .requeue(let id, let token, let reason):
            do {
                let requeued = try await store.requeue(id, token: token, reason: reason)
                if requeued {
                    logger.info("job \(id) queued again: \(reason)", metadata: ["job": .string(id.rawValue)])
                    await publishChange(of: id)
                }
                await event { $0.requeued(token, requeued) }
            } catch {
                logger.error(
                    "cannot queue job \(id) again (\(reason)): \(error); retrying",
                    metadata: ["job": .string(id.rawValue)])
                machine.now = Timestamp.now()
                machine.closeFailed(token)
            }
        case .loadQueue(let limit):
            do {
                let jobs = try await store.queued(limit: limit)
                await event { $0.queueLoaded(jobs) }
            } catch {
                logger.error("cannot read the queue: \(error); retrying")
                machine.queueLoadFailed()
            }
        }
    }

    /// `running` for an assigned attempt: only what `xn show` reports changes if it fails (the
    /// end is stored from `assigned` as well), so it is tried a few times and then logged.
    private func markStarted(_ id: JobID, _ token: AttemptToken) async {
        for attempt in 1...3 {
            do {
                if try await store.markStarted(id, token: token) { await publishChange(of: id) }
                return
            } catch {
                logger.error(
                    "cannot mark job \(id) running (try \(attempt) of 3): \(error)",
                    metadata: ["job": .string(id.rawValue)])
                try? await Task.sleep(for: .milliseconds(50 * attempt))
            }
        }
    }

    /// Tells live job lists of a change the store reported without the record: read only when
    /// someone watches, so the path that starts jobs pays nothing otherwise.
    private func publishChange(of id: JobID) async {
        guard feed.isWatched else { return }
        do {
            if let job = try await store.job(id) { feed.publish(job) }
        } catch {
            // The change is stored; only the live lists miss it, and they reload when they reconnect.
            logger.warning(
                "cannot read job \(id) to show its change on live job lists: \(error)",
                metadata: ["job": .string(id.rawValue)])
        }
    }

    /// Appends output, trying again a few times: a write at an offset can be repeated.
    func appendOutput(_ id: JobID, _ stream: OutputStreamKind, offset: Int, bytes: ArraySlice<UInt8>) async throws {
        var attempt = 1
        while true {
            do {
                try await store.appendOutput(id, stream: stream, offset: offset, bytes: bytes)
                metrics.outputStored(stream, bytes: bytes.count)
                return
            } catch {
                guard attempt < 3 else { throw error }
                logger.error(
                    "cannot store output of job \(id) (try \(attempt) of 3): \(error)",
                    metadata: ["job": .string(id.rawValue)])
                try? await Task.sleep(for: .milliseconds(50 * attempt))
                attempt += 1
            }
        }
    }
}
