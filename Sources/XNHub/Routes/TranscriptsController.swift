import Foundation
import Hummingbird
import XNProtocol
import XNStore

/// `/v1/jobs/ID/transcripts`: the recorded attach sessions that could type into a job (admin).
struct TranscriptsController: Sendable {
    let transcripts: any TranscriptStore

    func register(on router: Router<HubRequestContext>) {
        router.get("/v1/jobs/:id/transcripts") { _, context in
            guard let id = JobID(context.parameters.get("id") ?? "") else { return Self.notFound }
            let sessions = try await transcripts.transcripts(of: id).map(TranscriptView.init)
            return Responses.json(.ok, TranscriptList(transcripts: sessions))
        }
        router.get("/v1/jobs/:id/transcripts/:session") { _, context in
            guard let id = JobID(context.parameters.get("id") ?? ""),
                let session = Int64(context.parameters.get("session") ?? ""),
                let (info, events) = try await transcripts.transcript(session), info.job == id.rawValue
            else { return Self.notFound }
            return Responses.text(.ok, Asciicast.render(info, events), contentType: "application/x-asciicast")
        }
    }

    static let notFound = Responses.error(
        .notFound, "transcript_not_found", "no such transcript: see GET /v1/jobs/ID/transcripts")
}

extension TranscriptView {
    init(_ info: TranscriptInfo) {
        self.init(
            session: info.session, token: info.token, peer: info.peer, startedAt: Timestamp.format(info.startedAt),
            endedAt: info.endedAt.map(Timestamp.format), events: info.events)
    }
}
