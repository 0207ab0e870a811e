import ArgumentParser
import Foundation
import XNClient
import XNHub
import XNProtocol
import XNStore

/// `xn token create|list|revoke`: against a running hub (admin token), or with `--data DIR`
/// straight in a stopped hub's data folder, which is how the first admin token is made.
struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create, list and revoke the bearer tokens of a hub.",
        discussion: """
            A hub with no token lets anyone on its interface do anything; once a token exists every \
            request needs one. Make the first with `xn token create --role admin --data DIR` while the \
            hub is stopped (DIR: its --data folder), or against a hub that has no token yet.
            """,
        subcommands: [Create.self, List.self, Revoke.self])

    /// Where tokens are managed: a hub over HTTP, or a data folder on this machine.
    struct Target: ParsableArguments {
        @OptionGroup var client: ClientOptions

        @Option(help: "Work on this data folder directly (the hub using it must be stopped).")
        var data: String?

        func registry() throws -> TokenRegistry? {
            guard let data else { return nil }
            var configuration = HubConfiguration()
            configuration.dataDirectory = data
            do {
                return TokenRegistry(store: try openStore(configuration))
            } catch let error as HubError {
                let inUse = error.description.hasSuffix("in use by another hub")
                printError(
                    error.description + (inUse ? "; stop it, or manage tokens through it with an admin token" : ""))
                throw ExitCode(1)
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Create a token and print its secret (shown this once).")

        @Option(help: "What the token may do: admin, submit, read or worker.")
        var role: TokenRole

        @Option(
            help: """
                Its name, for lists, job owners and the audit log (default: ROLE-RANDOM). A worker token's name is \
                the only worker name it connects as.
                """)
        var name: String?

        @Option(help: "Commands it may run, comma-separated, matched like the hub's -w (default: the hub's).")
        var allow: String?

        @Option(
            help: """
                Labels its jobs always carry, k=v,k=v: they run only on workers with them. For a worker token: the \
                labels its worker may announce (default: none).
                """)
        var labels: String?

        @Option(help: "For a worker token: the most slots its worker may offer (default: any).")
        var slots: Int?

        @Option(help: "Its jobs that may wait queued at once (default: the hub's --max-queued-per-token).")
        var maxQueued: Int?

        @Flag(
            help: """
                Its jobs always run isolated (bubblewrap: the system read-only, their own /tmp and PID namespace, no \
                network); runners that cannot isolate refuse them.
                """)
        var isolate = false

        @Flag(help: "With --isolate: its jobs may keep the network when they ask (network: true).")
        var allowNetwork = false

        @OptionGroup var target: Target

        func run() async throws {
            var request = TokenRequest(
                name: name ?? "\(role.rawValue)-\(String(UInt32.random(in: .min ... .max), radix: 16))", role: role)
            request.allow = allow.map { $0.split(separator: ",").map(String.init) }
            request.labels = try labels.map {
                try keyValuePairs($0.split(separator: ",").map(String.init), option: "--labels")
            }
            request.maxQueued = maxQueued
            request.slots = slots
            request.isolate = isolate
            request.allowNetwork = allowNetwork
            if let problem = request.problem {
                throw ValidationError("--\(problem.field.replacingOccurrences(of: "_", with: "-")): \(problem.message)")
            }
            let created: TokenView
            if let registry = try target.registry() {
                do {
                    let (token, secret) = try await registry.create(request)
                    created = token.view
                    say(secret)
                } catch let taken as TokenNameTaken {
                    printError("a token named '\(taken.name)' exists (revoked names stay taken)")
                    throw ExitCode(1)
                }
            } else {
                let hub = try target.client.makeClient()
                created = try await reportingErrors { try await hub.createToken(request) }
                say(created.secret ?? "")
            }
            printError("created \(created.role.rawValue) token '\(created.name)'; its secret is shown this once")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List tokens (never their secrets).")

        @Flag(help: "Print the JSON answer.")
        var json = false

        @OptionGroup var target: Target

        func run() async throws {
            let tokens: [TokenView]
            if let registry = try target.registry() {
                tokens = try await registry.list().map(\.view)
            } else {
                let hub = try target.client.makeClient()
                tokens = try await reportingErrors { try await hub.tokens() }.tokens
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                say(String(decoding: try encoder.encode(TokenList(tokens: tokens)), as: UTF8.self))
                return
            }
            say("NAME                 ROLE    CREATED                   STATE    LIMITS")
            for token in tokens {
                var limits: [String] = []
                if let allow = token.allow { limits.append("allow " + allow.joined(separator: ",")) }
                if let labels = token.labels {
                    limits.append(
                        "on " + labels.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: ","))
                }
                if let cap = token.maxQueued { limits.append("max-queued \(cap)") }
                if let slots = token.slots { limits.append("slots \(slots)") }
                if token.isolate { limits.append(token.allowNetwork ? "isolated (network allowed)" : "isolated") }
                let state = token.revokedAt == nil ? "active" : "revoked"
                say(
                    token.name.padding(toLength: 20, withPad: " ", startingAt: 0) + " "
                        + token.role.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0) + " "
                        + token.createdAt.padding(toLength: 25, withPad: " ", startingAt: 0) + " "
                        + state.padding(toLength: 8, withPad: " ", startingAt: 0) + " " + limits.joined(separator: "; ")
                )
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke", abstract: "Revoke a token: it is refused from now on.")

        @Argument(help: "The token's name.")
        var name: String

        @OptionGroup var target: Target

        func run() async throws {
            if let registry = try target.registry() {
                guard try await registry.revoke(name) != nil else {
                    printError("no token named '\(name)'")
                    throw ExitCode(1)
                }
            } else {
                let hub = try target.client.makeClient()
                _ = try await reportingErrors { try await hub.revokeToken(name) }
            }
            printError("revoked token '\(name)'")
        }
    }
}

extension TokenRole: ExpressibleByArgument {}
