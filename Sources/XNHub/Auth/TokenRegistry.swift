import Crypto
import Foundation
import Synchronization
public import XNProtocol
public import XNStore

/// The hub's tokens, held in memory for a lookup per request and written through to the store.
/// Authentication is on once any token was ever created (revoking every token does not open
/// the hub again).
public final class TokenRegistry: Sendable {
    fileprivate struct State {
        var byHash: [String: TokenRecord] = [:]
        var whitelists: [String: CommandWhitelist] = [:]
        var enabled = true
    }

    private let store: any TokenStore
    private let state = Mutex(State())
    /// Open WebSocket sessions (attach, worker) by the token that opened them: how to end each.
    private let sessions = Mutex(LiveSessions())

    private struct LiveSessions {
        var next = 0
        var byToken: [String: [Int: @Sendable () async -> Void]] = [:]
    }

    public init(store: any TokenStore) {
        self.store = store
    }

    /// Reads every token from the store; until then every request is refused.
    public func load() async throws {
        let tokens = try await store.tokens()
        state.withLock { state in
            state.enabled = !tokens.isEmpty
            state.byHash = [:]
            for token in tokens { state.remember(token) }
        }
    }

    /// Whether requests must carry a token.
    public var isEnabled: Bool { state.withLock { $0.enabled } }

    /// Who carries `authorization` (the whole header value), or why nobody does.
    func caller(authorization: String?) -> Result<Caller, AuthRefusal> {
        guard isEnabled else { return .success(.open) }
        guard let authorization, !authorization.isEmpty else {
            return .failure(.unauthenticated("this hub needs a bearer token (Authorization: Bearer …)"))
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            return .failure(.unauthenticated("the Authorization header must be 'Bearer TOKEN'"))
        }
        let hash = Self.hash(String(parts[1]).trimmingCharacters(in: .whitespaces))
        return state.withLock { state -> Result<Caller, AuthRefusal> in
            guard let token = state.byHash[hash] else { return .failure(.unauthenticated("unknown token")) }
            guard token.revokedAt == nil else {
                return .failure(.unauthenticated("token '\(token.name)' was revoked"))
            }
            return .success(Caller(token: token, whitelist: state.whitelists[token.name]))
        }
    }

    /// Creates a token and returns it with its secret, the only time the secret is known.
    public func create(_ request: TokenRequest) async throws -> (token: TokenRecord, secret: String) {
        let secret = TokenSecret.random()
        let token = TokenRecord(
            name: request.name, role: request.role, hash: Self.hash(secret),
            allow: request.allow.flatMap { $0.isEmpty ? nil : $0 },
            labels: request.labels.flatMap { $0.isEmpty ? nil : $0 }, maxQueued: request.maxQueued,
            slots: request.slots, isolate: request.isolate, allowNetwork: request.allowNetwork,
            createdAt: Timestamp.now())
        try await store.insertToken(token)
        state.withLock { state in
            state.enabled = true
            state.remember(token)
        }
        return (token, secret)
    }

    /// Revokes the token named `name`: requests carrying it are refused from now on, and the
    /// attach and worker sessions it opened are ended.
    public func revoke(_ name: String) async throws -> TokenRecord? {
        let revoked = try await store.revokeToken(named: name, at: Timestamp.now())
        guard let revoked else { return nil }
        state.withLock { $0.remember(revoked) }
        let ends = sessions.withLock { $0.byToken.removeValue(forKey: name) ?? [:] }
        for end in ends.values { await end() }
        return revoked
    }

    /// Runs `body`, a session opened with the token named `token`; if that token is revoked
    /// meanwhile, `end` is called to close the session (and `body` should then return).
    func session<T>(
        of token: String?, end: @escaping @Sendable () async -> Void, _ body: () async -> T
    ) async -> T {
        guard let token else { return await body() }
        let key = sessions.withLock { sessions in
            sessions.next += 1
            sessions.byToken[token, default: [:]][sessions.next] = end
            return sessions.next
        }
        defer {
            sessions.withLock { sessions in
                sessions.byToken[token]?[key] = nil
                if sessions.byToken[token]?.isEmpty == true { sessions.byToken[token] = nil }
            }
        }
        return await body()
    }

    public func list() async throws -> [TokenRecord] {
        try await store.tokens()
    }

    /// Hex SHA-256 of a secret: secrets are 256 random bits, so a fast hash suffices.
    public static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

extension TokenRegistry.State {
    fileprivate mutating func remember(_ token: TokenRecord) {
        byHash[token.hash] = token
        if let allow = token.allow, !allow.isEmpty { whitelists[token.name] = CommandWhitelist(allow) }
    }
}

/// Who made a request: a token, or anyone when the hub has no tokens.
struct Caller: Sendable {
    /// nil when authentication is off.
    let token: TokenRecord?
    /// The token's own command whitelist, when it has one.
    let whitelist: CommandWhitelist?

    static let open = Caller(token: nil, whitelist: nil)

    /// The token's name, for job owners and the audit log.
    var name: String? { token?.name }

    func may(_ permission: Permission) -> Bool {
        token?.role.grants(permission) ?? true
    }

    /// Whether the caller may cancel, signal or type into `job`: admins any, submitters their own.
    func mayControl(_ job: JobRecord) -> Bool {
        guard let token else { return true }
        return token.role == .admin || (token.role == .submit && job.owner == token.name)
    }
}

/// Why a request is refused before it reaches its route.
enum AuthRefusal: Error {
    /// 401: no token, a malformed header, an unknown or revoked token.
    case unauthenticated(String)
    /// 403: a valid token whose role or ownership does not cover the request.
    case forbidden(String)
}
