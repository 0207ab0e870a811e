import Logging

/// `--log-format text`: swift-log's `StreamLogHandler` lines on stderr, byte for byte, with its
/// metadata kept as set and rendered only when a line is written. `StreamLogHandler` renders its
/// metadata on every change, and Hummingbird sets a request id on every request's logger: at
/// `--log-level error` that was 2% of the hub's CPU serving lookups, for lines never written.
struct TextLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var stream = StreamLogHandler.standardError(label: label, metadataProvider: metadataProvider)
        stream.logLevel = logLevel
        stream.metadata = metadata
        stream.log(event: event)
    }
}
