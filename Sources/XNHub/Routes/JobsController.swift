import Foundation
import HTTPTypes
import Hummingbird
import XNProtocol
import XNStore

/// The v1 jobs API: submit, get, list, raw output, cancel.
struct JobsController: Sendable {
    let scheduler: Scheduler
    let store: any JobStore
    let configuration: HubConfiguration
    let audit: AuditLog

    /// Longest a `?wait=` long-poll may hold a request.
    static let maxWaitSeconds = 300.0

    func register(on router: Router<HubRequestContext>) {
        let jobs = router.group("v1/jobs")
        jobs.post { request, context in try await submit(request, context) }
        jobs.get { request, _ in try await list(request) }
        jobs.get(":id") { request, context in
            try await withJob(context) { try await show($0, wait: request.uri.queryParameters.get("wait")) }
        }
        jobs.get(":id/stdout") { request, context in
            try await withJob(context) { try await output($0, .stdout, request) }
        }
        jobs.get(":id/stderr") { request, context in
            try await withJob(context) { try await output($0, .stderr, request) }
        }
        jobs.post(":id/cancel") { _, context in
            try await withJob(context) { try await cancel($0, context) }
        }
        jobs.post(":id/signal") { request, context in
            try await withJob(context) { try await signal($0, request, context) }
        }
    }

    private func submit(_ request: Request, _ context: HubRequestContext) async throws -> Response {
        var request = request
        let wait: Double?
        switch parseWait(request.uri.queryParameters.get("wait")) {
        case .success(let value): wait = value
        case .failure(let response): return response.response
        }
        let body: ByteBuffer
        do {
            body = try await request.body(upTo: configuration.maxBodyBytes)
        } catch is BodyTooLarge {
            return Responses.error(
                .contentTooLarge, "body_too_large", "request body is larger than \(configuration.maxBodyBytes) bytes")
        }
        var spec: JobSpec
        do {
            spec = try JobSpec.parse(json: body.readableBytesView, strict: true)
        } catch {
            return Responses.error(
                .badRequest, error.field == nil ? "invalid_body" : "invalid_field", error.message, field: error.field)
        }
        switch configuration.admit(spec, by: context.caller) {
        case .success(let admitted): spec = admitted
        case .failure(let refusal):
            return Responses.error(refusal.status, refusal.code, refusal.message, field: refusal.field)
        }
        let peer = context.peer
        let owner = context.caller.name
        let cap = configuration.queueCap(of: context.caller)
        do {
            guard let wait else {
                let job = try await scheduler.submit(spec, owner: owner, ownerCap: cap)
                audit.submitted(job, from: peer)
                return Responses.json(.created, JobView(job))
            }
            let job = try await scheduler.submitAndWait(
                spec, owner: owner, ownerCap: cap, timeout: .milliseconds(Int64(wait * 1000))
            ) {
                audit.submitted($0, from: peer)
            }
            return try await view(job, status: .created)
        } catch let full as QueueFull {
            return Responses.error(.tooManyRequests, "queue_full", full.message)
        }
    }

    private func show(_ id: JobID, wait: String?) async throws -> Response {
        let job: JobRecord?
        switch parseWait(wait) {
        case .success(let seconds?):
            job = try await scheduler.job(id, waitingUpTo: .milliseconds(Int64(seconds * 1000)))
        case .success(nil):
            job = try await store.job(id)
        case .failure(let response):
            return response.response
        }
        guard let job else { return Self.notFound(id) }
        return try await view(job, status: .ok)
    }

    /// The full v1 view of a job, with (the start of) its output as text.
    private func view(_ job: JobRecord, status: HTTPResponse.Status) async throws -> Response {
        let (stdout, stderr) = try await store.fullOutput(of: job, limit: Self.inlineOutputBytes)
        let waiting = job.state == .queued ? await scheduler.waitingReason(job.spec) : nil
        return Responses.json(status, JobView(job, stdout: stdout, stderr: stderr, waiting: waiting))
    }

    private func list(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var states: [JobState]?
        if let text = query.get("state"), !text.isEmpty {
            var parsed: [JobState] = []
            for name in text.split(separator: ",") {
                guard let state = JobState(rawValue: String(name)) else {
                    let known = JobState.allCases.map(\.rawValue).joined(separator: ", ")
                    return Responses.error(
                        .badRequest, "invalid_query", "state '\(name)' is not one of: \(known)", field: "state")
                }
                parsed.append(state)
            }
            states = parsed
        }
        var limit = 50
        if let text = query.get("limit") {
            guard let value = Int(text), (1...1000).contains(value) else {
                return Responses.error(
                    .badRequest, "invalid_query", "limit must be an integer from 1 to 1000", field: "limit")
            }
            limit = value
        }
        var before: Int64?
        if let text = query.get("before") {
            guard let value = Int64(text), value > 0 else {
                return Responses.error(
                    .badRequest, "invalid_query", "before must be a cursor from a previous page", field: "before")
            }
            before = value
        }
        var filter = JobFilter(states: states)
        if let owner = query.get("owner"), !owner.isEmpty { filter.owner = owner }
        for pair in query.getAll("label") where !pair.isEmpty {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                return Responses.error(.badRequest, "invalid_query", "label must be KEY=VALUE", field: "label")
            }
            filter.labels[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        if let text = query.get("q"), !text.isEmpty {
            guard text.count <= 200 else {
                return Responses.error(.badRequest, "invalid_query", "q is at most 200 characters", field: "q")
            }
            filter.text = text
        }
        let jobs = try await store.list(filter, before: before, limit: limit + 1)
        let page = jobs.prefix(limit)
        let next = jobs.count > limit ? page.last.map { String($0.seq) } : nil
        return Responses.json(.ok, JobPage(jobs: page.map { JobView($0) }, next: next))
    }

    private func output(_ id: JobID, _ stream: OutputStreamKind, _ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var offset = 0
        if let text = query.get("offset") {
            guard let value = Int(text), value >= 0 else {
                return Responses.error(
                    .badRequest, "invalid_query", "offset must be a byte count of 0 or more", field: "offset")
            }
            offset = value
        }
        var limit = configuration.maxOutputBytes
        if let text = query.get("limit") {
            guard let value = Int(text), value >= 0 else {
                return Responses.error(
                    .badRequest, "invalid_query", "limit must be a byte count of 0 or more", field: "limit")
            }
            limit = value
        }
        guard let job = try await store.job(id) else { return Self.notFound(id) }
        let total = stream == .stdout ? job.stdoutBytes : job.stderrBytes
        let truncated = stream == .stdout ? job.stdoutTruncated : job.stderrTruncated
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[.xnTotalBytes] = String(total)
        headers[.xnTruncated] = truncated ? "true" : "false"
        headers[.xnJobState] = job.state.rawValue
        // Streamed a piece at a time: a large output never sits whole in the hub's memory.
        let length = max(0, min(limit, total - offset))
        let start = offset
        let store = store
        let body = ResponseBody(contentLength: length) { writer in
            var position = start
            while position < start + length {
                let piece = try await store.output(
                    id, stream: stream, from: position, limit: min(Self.pieceBytes, start + length - position))
                if piece.isEmpty { break }
                try await writer.write(ByteBuffer(bytes: piece))
                position += piece.count
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// Output bytes per stream a job's JSON view carries: polling a job that wrote gigabytes must
    /// not make the hub build gigabytes of JSON. The raw endpoints give all of it.
    static let inlineOutputBytes = 1 << 20

    /// Bytes read from the store per piece of a raw output response.
    static let pieceBytes = 1 << 20

    private func cancel(_ id: JobID, _ context: HubRequestContext) async throws -> Response {
        guard let before = try await store.job(id) else { return Self.notFound(id) }
        if !context.caller.mayControl(before) { return Self.notYours(id) }
        if before.state.isTerminal {
            return Responses.error(.conflict, "job_finished", "job \(id) already ended (\(before.state.rawValue))")
        }
        audit.record("cancel", job: id.rawValue, from: context.peer, by: context.caller.name)
        guard let job = try await scheduler.cancel(id) else { return Self.notFound(id) }
        return try await view(job, status: .ok)
    }

    /// `{"signal": "INT"}` (or `"SIGINT"`, or `2`) to the job's whole process group.
    private func signal(_ id: JobID, _ request: Request, _ context: HubRequestContext) async throws -> Response {
        guard let job = try await store.job(id) else { return Self.notFound(id) }
        if !context.caller.mayControl(job) { return Self.notYours(id) }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.body(upTo: 4096)
        } catch is BodyTooLarge {
            return Responses.error(.contentTooLarge, "body_too_large", "request body is larger than 4096 bytes")
        }
        let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
        let known = SignalName.numbers.keys.sorted().joined(separator: ", ")
        let raw = object?["signal"]
        let number: Int32? =
            if let text = raw as? String {
                SignalName.parse(text)
            } else if let value = raw as? NSNumber, String(cString: value.objCType) != "c" {
                SignalName.parse(value.stringValue)
            } else {
                nil
            }
        guard let object, object.keys.allSatisfy({ $0 == "signal" }), let number else {
            return Responses.error(
                .badRequest, "invalid_field", "body must be {\"signal\": NAME}, NAME one of \(known)", field: "signal")
        }
        audit.record(
            "signal", job: id.rawValue, from: context.peer, by: context.caller.name, ["signal": String(number)])
        switch try await scheduler.signal(id, number) {
        case .notFound:
            return Self.notFound(id)
        case .notRunning(let why):
            return Responses.error(.conflict, "job_not_running", "job \(id) is not running: \(why)")
        case .sent:
            guard let job = try await store.job(id) else { return Self.notFound(id) }
            return Responses.json(.accepted, JobView(job))
        }
    }

    private func withJob(
        _ context: HubRequestContext, _ body: (JobID) async throws -> Response
    ) async throws -> Response {
        let text = context.parameters.get("id") ?? ""
        guard let id = JobID(text) else { return Self.notAJobID(text) }
        return try await body(id)
    }

    static func notAJobID(_ text: String) -> Response {
        Responses.error(.notFound, "job_not_found", "'\(text)' is not a job id (40 hex characters)", field: "id")
    }

    static func notFound(_ id: JobID) -> Response {
        Responses.error(.notFound, "job_not_found", "no job with id \(id)")
    }

    static func notYours(_ id: JobID) -> Response {
        Responses.error(
            .forbidden, "forbidden", "job \(id) was submitted with another token; only an admin may act on it")
    }

    /// A refusal carried through `Result`.
    struct Refusal: Error {
        let response: Response
    }

    private func parseWait(_ text: String?) -> Result<Double?, Refusal> {
        guard let text else { return .success(nil) }
        guard let value = Double(text), value >= 0, value <= Self.maxWaitSeconds else {
            return .failure(
                Refusal(
                    response: Responses.error(
                        .badRequest, "invalid_query", "wait must be a number of seconds from 0 to 300", field: "wait")))
        }
        return .success(value)
    }
}

extension HTTPField.Name {
    static let xnTotalBytes = Self("X-Xn-Total-Bytes")!
    static let xnTruncated = Self("X-Xn-Truncated")!
    static let xnJobState = Self("X-Xn-Job-State")!
}
