import Dispatch
import Foundation
import XNClient
import XNProtocol

/// Ctrl-C while following a job cancels the job on the hub (like ssh ending the remote command);
/// a second Ctrl-C ends xn at once. The handler is in place before `submit` runs: a Ctrl-C that
/// comes while the job is being submitted cancels it as soon as its id is known.
func cancelOnInterrupt(
    submit: () async throws -> JobView, hub: HubClient,
    _ body: @escaping @Sendable (JobView) async throws -> JobView
) async throws -> JobView {
    let (interrupts, continuation) = AsyncStream.makeStream(of: Void.self)
    signal(SIGINT, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGINT)
    source.setEventHandler {
        signal(SIGINT, SIG_DFL)
        continuation.yield()
    }
    source.resume()
    defer {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
    let submitted = try await submit()
    let id = submitted.id
    return try await withThrowingTaskGroup(of: JobView?.self) { group in
        group.addTask { try await body(submitted) }
        group.addTask {
            for await _ in interrupts {
                printError("interrupted: canceling job \(id)")
                return try await hub.cancel(id)
            }
            return nil
        }
        while let result = try await group.next() {
            if let job = result {
                group.cancelAll()
                continuation.finish()
                return job
            }
        }
        throw ClientError("job \(id) was not followed to its end")
    }
}
