import Foundation
import Hummingbird
import XNProtocol
import XNStore

/// `/v1/tokens`: create, list and revoke bearer tokens (admin only once the hub has tokens; on a
/// hub without tokens anyone who can reach it may create the first one, which turns auth on).
struct TokensController: Sendable {
    let tokens: TokenRegistry
    let audit: AuditLog

    func register(on router: Router<HubRequestContext>) {
        router.get("/v1/tokens") { _, _ in
            let all = try await tokens.list()
            return Responses.json(.ok, TokenList(tokens: all.map(\.view)))
        }
        router.post("/v1/tokens") { request, context in try await create(request, context) }
        router.delete("/v1/tokens/:name") { _, context in
            let raw = context.parameters.get("name") ?? ""
            let name = raw.removingPercentEncoding ?? raw
            guard let token = try await tokens.revoke(name) else {
                return Responses.error(.notFound, "token_not_found", "no token named '\(name)'", field: "name")
            }
            audit.record("revoke token", job: "-", from: context.peer, by: context.caller.name, ["name": name])
            return Responses.json(.ok, token.view)
        }
    }

    private func create(_ request: Request, _ context: HubRequestContext) async throws -> Response {
        // A browser sends `Origin`: even a same-origin page must not turn a token-less hub into
        // one whose first admin token it holds.
        if !tokens.isEnabled,
            request.headers[values: .origin].contains(where: { !BrowserGuard.isClientLibraryOrigin($0) })
        {
            return Responses.error(
                .forbidden, "forbidden",
                "the first token is made with `xn token create` (or a client that is not a web browser)")
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.body(upTo: 64 << 10)
        } catch is BodyTooLarge {
            return Responses.error(.contentTooLarge, "body_too_large", "request body is larger than 65536 bytes")
        }
        let asked: TokenRequest
        switch Self.parse(Data(body.readableBytesView)) {
        case .success(let value): asked = value
        case .failure(let refusal): return refusal.response
        }
        do {
            let (token, secret) = try await tokens.create(asked)
            audit.record(
                "create token", job: "-", from: context.peer, by: context.caller.name,
                ["name": token.name, "role": token.role.rawValue])
            var view = token.view
            view.secret = secret
            return Responses.json(.created, view)
        } catch let taken as TokenNameTaken {
            return Responses.error(
                .conflict, "token_exists", "a token named '\(taken.name)' exists (revoked names stay taken)",
                field: "name")
        }
    }

    /// A token request, or a 400 naming the field at fault.
    static func parse(_ data: Data) -> Result<TokenRequest, JobsController.Refusal> {
        func refuse(_ message: String, _ field: String? = nil) -> Result<TokenRequest, JobsController.Refusal> {
            .failure(
                .init(
                    response: Responses.error(
                        .badRequest, field == nil ? "invalid_body" : "invalid_field", message, field: field)))
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return refuse("body must be a JSON object")
        }
        let known: Set = ["name", "role", "allow", "labels", "max_queued", "slots", "isolate", "allow_network"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            return refuse("unknown field '\(unknown)'", unknown)
        }
        guard let name = object["name"] as? String else { return refuse("name is required (a string)", "name") }
        let roles = TokenRole.allCases.map(\.rawValue).joined(separator: ", ")
        guard let roleText = object["role"] as? String, let role = TokenRole(rawValue: roleText) else {
            return refuse("role is required, one of: \(roles)", "role")
        }
        var request = TokenRequest(name: name, role: role)
        if let allow = object["allow"], !(allow is NSNull) {
            guard let list = allow as? [String] else { return refuse("allow must be a list of commands", "allow") }
            request.allow = list
        }
        if let labels = object["labels"], !(labels is NSNull) {
            guard let map = labels as? [String: String] else {
                return refuse("labels must be an object of strings", "labels")
            }
            request.labels = map
        }
        /// A JSON integer of 0 or more (not a boolean, which Foundation also reads as a number).
        func count(_ field: String) -> Result<Int?, JobsController.Refusal> {
            guard let raw = object[field], !(raw is NSNull) else { return .success(nil) }
            guard let number = raw as? NSNumber, String(cString: number.objCType) != "c",
                let value = Int(exactly: number.doubleValue), value >= 0
            else { return refuse("\(field) must be an integer of 0 or more", field).map { _ in nil } }
            return .success(value)
        }
        switch (count("max_queued"), count("slots")) {
        case (.failure(let refusal), _), (_, .failure(let refusal)): return .failure(refusal)
        case (.success(let maxQueued), .success(let slots)):
            request.maxQueued = maxQueued
            request.slots = slots
        }
        for field in ["isolate", "allow_network"] {
            guard let raw = object[field], !(raw is NSNull) else { continue }
            guard let flag = raw as? NSNumber, String(cString: flag.objCType) == "c" else {
                return refuse("\(field) must be true or false", field)
            }
            if field == "isolate" { request.isolate = flag.boolValue } else { request.allowNetwork = flag.boolValue }
        }
        if let problem = request.problem { return refuse(problem.message, problem.field) }
        return .success(request)
    }
}
