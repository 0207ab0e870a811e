import ArgumentParser
import Foundation
import XNClient
import XNProtocol

/// `xn audit transcript ID`: what was shown and typed in the sessions that could type into a job.
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Look at the audit trail of a hub (admin).", subcommands: [Transcript.self])

    struct Transcript: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "transcript",
            abstract: "Print a recorded attach session as asciicast v2 (play it with `asciinema play FILE`).",
            discussion: """
                Every attach that could type into a job (xn run -it, xn attach) is recorded: the output \
                it was shown, the input it sent, resizes and signals, with their times. Without \
                --session the latest is printed and the others are listed on stderr.
                """)

        @Argument(help: "The job id.")
        var id: String

        @Option(help: "Which session (see --list).")
        var session: Int64?

        @Flag(help: "List the job's recorded sessions instead.")
        var list = false

        @OptionGroup var client: ClientOptions

        func run() async throws {
            let hub = try client.makeClient()
            try await reportingErrors {
                let sessions = try await hub.transcripts(id).transcripts
                if list {
                    say("SESSION  TOKEN            PEER                   STARTED                   EVENTS")
                    for session in sessions {
                        say(
                            String(session.session).padding(toLength: 8, withPad: " ", startingAt: 0) + " "
                                + (session.token ?? "-").padding(toLength: 16, withPad: " ", startingAt: 0) + " "
                                + session.peer.padding(toLength: 22, withPad: " ", startingAt: 0) + " "
                                + session.startedAt.padding(toLength: 25, withPad: " ", startingAt: 0) + " "
                                + String(session.events))
                    }
                    return
                }
                guard let chosen = session ?? sessions.last?.session else {
                    throw ClientError("job \(id) has no recorded session (only attaches that can type are recorded)")
                }
                if session == nil && sessions.count > 1 {
                    printError("job \(id) has \(sessions.count) sessions; printing \(chosen) (see --list, --session)")
                }
                writeAll(1, try await hub.transcript(id, session: chosen))
            }
        }
    }
}
