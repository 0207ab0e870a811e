import ArgumentParser
import XNClient
import XNProtocol

/// `xn cancel ID`: stop a queued or running job (its whole process group).
struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a queued or running job.")

    @Argument(help: "The job id.")
    var id: String

    @OptionGroup var client: ClientOptions

    func run() async throws {
        let job = try await reportingErrors { try await client.makeClient().cancel(id) }
        say("\(job.id) \(job.state.rawValue)")
    }
}
