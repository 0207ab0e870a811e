import Foundation
import GRDB
public import XNProtocol

/// A bearer token as stored: its secret only as a hash.
public struct TokenRecord: Sendable, Equatable {
    public var name: String
    public var role: TokenRole
    /// Hex SHA-256 of the secret.
    public var hash: String
    public var allow: [String]?
    public var labels: [String: String]?
    public var maxQueued: Int?
    /// For a worker token: the most slots its worker may offer.
    public var slots: Int?
    /// Its jobs always run isolated.
    public var isolate: Bool
    /// Its isolated jobs may keep the network when they ask.
    public var allowNetwork: Bool
    /// Milliseconds since the epoch.
    public var createdAt: Int64
    public var revokedAt: Int64?

    public init(
        name: String, role: TokenRole, hash: String, allow: [String]? = nil, labels: [String: String]? = nil,
        maxQueued: Int? = nil, slots: Int? = nil, isolate: Bool = false, allowNetwork: Bool = false, createdAt: Int64,
        revokedAt: Int64? = nil
    ) {
        self.isolate = isolate
        self.allowNetwork = allowNetwork
        self.name = name
        self.role = role
        self.hash = hash
        self.allow = allow
        self.labels = labels
        self.maxQueued = maxQueued
        self.slots = slots
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    public var view: TokenView {
        TokenView(
            name: name, role: role, allow: allow, labels: labels, maxQueued: maxQueued, slots: slots,
            isolate: isolate, allowNetwork: allowNetwork, createdAt: Timestamp.format(createdAt),
            revokedAt: revokedAt.map(Timestamp.format))
    }
}

/// Where tokens live: the same database as the jobs, so one data folder holds everything.
public protocol TokenStore: Sendable {
    /// Stores a new token; `TokenNameTaken` when the name is in use (revoked names stay taken).
    func insertToken(_ token: TokenRecord) async throws
    /// Every token ever created, revoked ones included, oldest first.
    func tokens() async throws -> [TokenRecord]
    /// Marks a token revoked; nil when no token has that name, the record as it was when it was already revoked.
    func revokeToken(named name: String, at time: Int64) async throws -> TokenRecord?
}

/// A token name already in use.
public struct TokenNameTaken: Error, Sendable {
    public let name: String
}

extension SQLiteJobStore: TokenStore {
    public func insertToken(_ token: TokenRecord) async throws {
        let allow = try token.allow.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        let labels = try token.labels.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        try await commits.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM tokens WHERE name = ?", arguments: [token.name]) == true {
                throw TokenNameTaken(name: token.name)
            }
            try db.execute(
                sql: """
                    INSERT INTO tokens (name, role, hash, allow, labels, max_queued, slots, isolate, allow_network,
                        created_at, revoked_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    token.name, token.role.rawValue, token.hash, allow, labels, token.maxQueued, token.slots,
                    token.isolate, token.allowNetwork, token.createdAt, token.revokedAt,
                ])
        }
    }

    public func tokens() async throws -> [TokenRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM tokens ORDER BY created_at, name").map(Self.token)
        }
    }

    public func revokeToken(named name: String, at time: Int64) async throws -> TokenRecord? {
        try await commits.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM tokens WHERE name = ?", arguments: [name]) else {
                return nil
            }
            var token = try Self.token(row)
            if token.revokedAt != nil { return token }
            try db.execute(sql: "UPDATE tokens SET revoked_at = ? WHERE name = ?", arguments: [time, name])
            token.revokedAt = time
            return token
        }
    }

    private static func token(_ row: Row) throws -> TokenRecord {
        let roleText: String = row["role"]
        guard let role = TokenRole(rawValue: roleText) else { throw StoreError("corrupt token role \(roleText)") }
        let decoder = JSONDecoder()
        let allow = try (row["allow"] as String?).map { try decoder.decode([String].self, from: Data($0.utf8)) }
        let labels = try (row["labels"] as String?).map {
            try decoder.decode([String: String].self, from: Data($0.utf8))
        }
        return TokenRecord(
            name: row["name"], role: role, hash: row["hash"], allow: allow, labels: labels,
            maxQueued: row["max_queued"], slots: row["slots"], isolate: row["isolate"],
            allowNetwork: row["allow_network"], createdAt: row["created_at"],
            revokedAt: row["revoked_at"])
    }
}
