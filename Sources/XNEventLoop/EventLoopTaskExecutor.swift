public import NIOCore

/// A task executor that runs every job on one NIO event loop, for tasks that serve one connection:
/// a job enqueued from the loop's own thread (NIO resuming a read the task waits for) runs after
/// the current event, without waking anything, and a frame the task writes needs no hop to the
/// loop. On a VM whose idle CPUs halt, each wake-up of another thread costs tens of microseconds.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
