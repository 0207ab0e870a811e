import Foundation

/// What a bearer token may do. Each role includes the ones before it, except `worker`, which
/// may only connect as a worker.
public enum TokenRole: String, Sendable, Codable, CaseIterable, Comparable {
    /// Look at jobs, their output (attach read-only), workers.
    case read
    /// Also submit jobs, and cancel, signal and type into its own jobs.
    case submit
    /// Everything: any job, tokens, transcripts.
    case admin
    /// Only `GET /v1/worker`: dial in and run jobs.
    case worker

    /// Whether this role holds `permission` (job ownership is checked separately).
    public func grants(_ permission: Permission) -> Bool {
        switch (self, permission) {
        case (_, .anyone), (.admin, _): true
        case (.worker, .worker): true
        case (.worker, _): false
        case (_, .authenticated), (_, .read): true
        case (.submit, .submit): true
        default: false
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// What a route needs from its caller.
public enum Permission: String, Sendable, CaseIterable {
    /// No token at all: the health checks load balancers and systemd make; they reveal nothing.
    case anyone
    /// Any valid token (routes nobody owns: the caller learns nothing before authenticating).
    case authenticated
    case read
    /// Submit jobs; acting on an existing job also needs that job to be the caller's own (or admin).
    case submit
    case admin
    case worker
}

/// A token as `GET /v1/tokens` shows it: never its secret.
public struct TokenView: Sendable, Codable, Equatable {
    public var name: String
    public var role: TokenRole
    /// Commands this token may run (matched like the hub's `-w`); nil: whatever the hub allows.
    public var allow: [String]?
    /// Labels every job of this token carries: its jobs run only on workers with them. For a
    /// worker token: the labels its worker may announce (none when nil).
    public var labels: [String: String]?
    /// Jobs of this token that may wait queued at once; nil: the hub's limit.
    public var maxQueued: Int?
    /// For a worker token: the most slots its worker may offer; nil: any.
    public var slots: Int?
    /// Its jobs always run isolated (see `JobSpec.isolate`).
    public var isolate: Bool
    /// Its isolated jobs may keep the network when they ask (`network: true`).
    public var allowNetwork: Bool
    public var createdAt: String
    public var revokedAt: String?
    /// The secret: only in the answer to the request that created the token.
    public var secret: String?

    enum CodingKeys: String, CodingKey {
        case name, role, allow, labels, slots, secret, isolate
        case maxQueued = "max_queued", createdAt = "created_at", revokedAt = "revoked_at"
        case allowNetwork = "allow_network"
    }

    public init(
        name: String, role: TokenRole, allow: [String]?, labels: [String: String]?, maxQueued: Int?,
        slots: Int? = nil, isolate: Bool = false, allowNetwork: Bool = false, createdAt: String,
        revokedAt: String? = nil, secret: String? = nil
    ) {
        self.isolate = isolate
        self.allowNetwork = allowNetwork
        self.name = name
        self.role = role
        self.allow = allow
        self.labels = labels
        self.maxQueued = maxQueued
        self.slots = slots
        self.createdAt = createdAt
        self.revokedAt = revokedAt
        self.secret = secret
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        role = try container.decode(TokenRole.self, forKey: .role)
        allow = try container.decodeIfPresent([String].self, forKey: .allow)
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels)
        maxQueued = try container.decodeIfPresent(Int.self, forKey: .maxQueued)
        slots = try container.decodeIfPresent(Int.self, forKey: .slots)
        // Hubs before isolation do not send these.
        isolate = try container.decodeIfPresent(Bool.self, forKey: .isolate) ?? false
        allowNetwork = try container.decodeIfPresent(Bool.self, forKey: .allowNetwork) ?? false
        createdAt = try container.decode(String.self, forKey: .createdAt)
        revokedAt = try container.decodeIfPresent(String.self, forKey: .revokedAt)
        secret = try container.decodeIfPresent(String.self, forKey: .secret)
    }
}

/// The body of `GET /v1/tokens`.
public struct TokenList: Sendable, Codable, Equatable {
    public var tokens: [TokenView]

    public init(tokens: [TokenView]) {
        self.tokens = tokens
    }
}

/// The body of `POST /v1/tokens`.
public struct TokenRequest: Sendable, Codable, Equatable {
    public var name: String
    public var role: TokenRole
    public var allow: [String]?
    public var labels: [String: String]?
    public var maxQueued: Int?
    /// For a worker token: the most slots its worker may offer.
    public var slots: Int?
    /// Its jobs always run isolated.
    public var isolate: Bool
    /// Its isolated jobs may keep the network when they ask.
    public var allowNetwork: Bool

    enum CodingKeys: String, CodingKey {
        case name, role, allow, labels, slots, isolate
        case maxQueued = "max_queued", allowNetwork = "allow_network"
    }

    public init(
        name: String, role: TokenRole, allow: [String]? = nil, labels: [String: String]? = nil, maxQueued: Int? = nil,
        slots: Int? = nil, isolate: Bool = false, allowNetwork: Bool = false
    ) {
        self.isolate = isolate
        self.allowNetwork = allowNetwork
        self.name = name
        self.role = role
        self.allow = allow
        self.labels = labels
        self.maxQueued = maxQueued
        self.slots = slots
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        role = try container.decode(TokenRole.self, forKey: .role)
        allow = try container.decodeIfPresent([String].self, forKey: .allow)
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels)
        maxQueued = try container.decodeIfPresent(Int.self, forKey: .maxQueued)
        slots = try container.decodeIfPresent(Int.self, forKey: .slots)
        isolate = try container.decodeIfPresent(Bool.self, forKey: .isolate) ?? false
        allowNetwork = try container.decodeIfPresent(Bool.self, forKey: .allowNetwork) ?? false
    }

    /// Why this request cannot make a token, or nil.
    public var problem: (field: String, message: String)? {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@".utf8)
        if name.isEmpty || name.utf8.count > 64 || !name.utf8.allSatisfy(allowed.contains) {
            return ("name", "name must be 1 to 64 ASCII letters, digits or - _ . @")
        }
        if let allow, allow.contains(where: \.isEmpty) { return ("allow", "allow entries must not be empty") }
        if let allow, role == .read || role == .worker, !allow.isEmpty {
            return ("allow", "allow applies to submit and admin tokens only")
        }
        if let labels, labels.keys.contains(where: \.isEmpty) { return ("labels", "label names must not be empty") }
        if let maxQueued, maxQueued < 0 { return ("max_queued", "max_queued must be 0 or more") }
        if let slots {
            if role != .worker { return ("slots", "slots applies to worker tokens only") }
            if !(0...1024).contains(slots) { return ("slots", "slots must be from 0 to 1024") }
        }
        if isolate, role == .read || role == .worker {
            return ("isolate", "isolate applies to submit and admin tokens only")
        }
        if allowNetwork, !isolate {
            return ("allow_network", "allow_network applies to tokens with isolate (others' jobs keep the network)")
        }
        return nil
    }
}

/// Bearer token secrets: `xn_` and 43 characters of base64url (256 random bits).
public enum TokenSecret {
    public static let prefix = "xn_"

    public static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let text = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return prefix + text
    }
}
