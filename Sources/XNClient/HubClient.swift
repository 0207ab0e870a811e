import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
public import XNProtocol

/// Typed calls to a hub's v1 API. Every failure is a `ClientError` with a message for people.
public struct HubClient: Sendable {
    public let baseURL: String
    /// Bearer token sent with every request; nil for a hub without tokens.
    public let token: String?
    /// PEM file of the private CA that signed an `https://` hub's certificate; nil: the system roots.
    public let caFile: String?
    /// How requests reach the hub, or why they cannot (a URL that is not one), said at each call.
    private let http: Result<HubHTTP, ClientError>

    /// `baseURL` like `http://127.0.0.1:9000`; a trailing slash is ignored.
    public init(baseURL: String, token: String? = nil) {
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
        self.token = token
        self.caFile = nil
        http = Result { () throws(ClientError) in try HubHTTP(baseURL: url, caFile: nil) }
    }

    /// A client for a hub whose certificate `caFile` signed (nil: the system roots).
    public init(baseURL: String, token: String?, caFile: String?) throws(ClientError) {
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
        self.token = token
        self.caFile = caFile
        http = .success(try HubHTTP(baseURL: url, caFile: caFile))
    }

    /// Submits a job; with `wait`, returns once it ended or `wait` seconds passed.
    public func submit(_ spec: JobSpec, wait: Double? = nil) async throws(ClientError) -> JobView {
        let body: Data
        do {
            body = try JSONEncoder().encode(spec)
        } catch {
            throw ClientError("cannot encode the job: \(error)")
        }
        return try await call(.POST, "/v1/jobs" + query(["wait": wait.map { String($0) }]), body: Array(body))
    }

    public func job(_ id: String, wait: Double? = nil) async throws(ClientError) -> JobView {
        try await call(.GET, "/v1/jobs/\(escape(id))" + query(["wait": wait.map { String($0) }]))
    }

    /// Polls with long waits until the job ends, then returns it.
    public func waitForEnd(_ id: String) async throws(ClientError) -> JobView {
        while true {
            let job = try await job(id, wait: 60)
            if job.state.isTerminal { return job }
        }
    }

    public func list(
        states: [JobState] = [], limit: Int? = nil, before: String? = nil, owner: String? = nil,
        labels: [String: String] = [:], text: String? = nil
    ) async throws(ClientError) -> JobPage {
        let parameters = [
            "state": states.isEmpty ? nil : states.map(\.rawValue).joined(separator: ","),
            "limit": limit.map(String.init), "before": before, "owner": owner, "q": text,
        ]
        var path = "/v1/jobs" + query(parameters)
        // `label` repeats, one KEY=VALUE each.
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
            path += (path.contains("?") ? "&" : "?") + "label=" + escape("\(key)=\(value)")
        }
        return try await call(.GET, path)
    }

    public func workers() async throws(ClientError) -> WorkerList {
        try await call(.GET, "/v1/workers")
    }

    /// Creates a token; the answer carries its secret, shown this once.
    public func createToken(_ request: TokenRequest) async throws(ClientError) -> TokenView {
        let body: Data
        do {
            body = try JSONEncoder().encode(request)
        } catch {
            throw ClientError("cannot encode the token request: \(error)")
        }
        return try await call(.POST, "/v1/tokens", body: Array(body))
    }

    public func tokens() async throws(ClientError) -> TokenList {
        try await call(.GET, "/v1/tokens")
    }

    public func revokeToken(_ name: String) async throws(ClientError) -> TokenView {
        try await call(.DELETE, "/v1/tokens/\(escape(name))")
    }

    /// The recorded sessions that could type into a job (admin).
    public func transcripts(_ id: String) async throws(ClientError) -> TranscriptList {
        try await call(.GET, "/v1/jobs/\(escape(id))/transcripts")
    }

    /// One session as asciicast v2.
    public func transcript(_ id: String, session: Int64) async throws(ClientError) -> [UInt8] {
        let response = try await send(.GET, "/v1/jobs/\(escape(id))/transcripts/\(session)", body: nil)
        guard response.status == 200 else { throw apiError(response) }
        return response.body
    }

    public func cancel(_ id: String) async throws(ClientError) -> JobView {
        try await call(.POST, "/v1/jobs/\(escape(id))/cancel")
    }

    /// The exact bytes of one stream from `offset`.
    public func output(_ id: String, stream: String, from offset: Int = 0) async throws(ClientError) -> [UInt8] {
        let response = try await send(
            .GET, "/v1/jobs/\(escape(id))/\(stream)" + query(["offset": String(offset)]), body: nil)
        guard response.status == 200 else { throw apiError(response) }
        return response.body
    }

    // MARK: - Transport

    struct RawResponse {
        var status: Int
        var body: [UInt8]
    }

    private func call<T: Decodable>(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil
    ) async throws(ClientError) -> T {
        let response = try await send(method, path, body: body)
        guard (200..<300).contains(response.status) else { throw apiError(response) }
        do {
            return try JSONDecoder().decode(T.self, from: Data(response.body))
        } catch {
            throw ClientError("unexpected answer from hub at \(baseURL): \(error)")
        }
    }

    private func send(_ method: HTTPMethod, _ path: String, body: [UInt8]?) async throws(ClientError) -> RawResponse {
        let http = try self.http.get()
        var headers: [(String, String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        do {
            // Longer than the longest wait a call asks the hub for (60 s long polls, 300 s `?wait`).
            let response = try await http.send(method, path, headers: headers, body: body, timeout: .seconds(330))
            return RawResponse(status: response.status, body: response.body)
        } catch {
            throw ClientError("cannot reach hub at \(baseURL) (\(Self.reason(error)))", unreachable: true)
        }
    }

    /// The hub's refusal of an attach to `job`, asked over plain HTTP (a WebSocket client sees
    /// only that the upgrade failed); nil when the hub would accept it.
    func attachRefusal(job: String, readOnly: Bool) async -> ClientError? {
        let path = "/v1/jobs/\(escape(job))/attach" + (readOnly ? "?mode=read-only" : "")
        guard let response = try? await send(.GET, path, body: nil), response.status != 426 else { return nil }
        return apiError(response)
    }

    private func apiError(_ response: RawResponse) -> ClientError {
        if let body = try? JSONDecoder().decode(APIErrorBody.self, from: Data(response.body)) {
            return ClientError(body.error.message, status: response.status, code: body.error.code)
        }
        return ClientError("hub answered HTTP \(response.status)", status: response.status)
    }

    private func query(_ parameters: [String: String?]) -> String {
        let items = parameters.compactMap { key, value in value.map { "\(key)=\(escape($0))" } }.sorted()
        return items.isEmpty ? "" : "?" + items.joined(separator: "&")
    }

    private func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlUnreservedSet) ?? text
    }

    static func reason(_ error: any Error) -> String {
        if let problem = HubTLS.problem(error) { return problem }
        if let error = error as? HubHTTPError { return error.description }
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return reason(first.error)
        }
        if let error = error as? IOError, error.errnoCode == ECONNREFUSED { return "connection refused" }
        if case ChannelError.connectTimeout = error { return "connect timeout" }
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("connectTimeout") { return "connect timeout" }
        if text.contains("remoteConnectionClosed") || text.contains("eof") {
            return "the hub closed the connection; does it serve https://?"
        }
        if text.contains("deadlineExceeded") { return "timed out" }
        return text
    }
}

extension CharacterSet {
    static let urlUnreservedSet = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}

/// A call that failed: the hub refused it (`status`, `code`) or could not be reached.
public struct ClientError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var status: Int?
    public var code: String?
    public var unreachable: Bool

    public init(_ message: String, status: Int? = nil, code: String? = nil, unreachable: Bool = false) {
        self.message = message
        self.status = status
        self.code = code
        self.unreachable = unreachable
    }

    public var description: String { message }
}
