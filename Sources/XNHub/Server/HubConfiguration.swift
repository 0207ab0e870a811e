import Foundation
public import XNProtocol

/// How a hub runs: where it listens, where it keeps data, what it admits. Its own slots are an
/// in-process worker composed by the caller (`buildApplication(localWorker:)`).
public struct HubConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (tests); the bound port is reported once listening.
    public var port = 9000
    /// Folder for the SQLite store; nil keeps everything in memory (tests only).
    public var dataDirectory: String? = "./xn-data"
    /// Commands allowed (http-runner's `-w`, matched by the rules of `CommandWhitelist`); empty allows all.
    public var whitelist = CommandWhitelist([])
    /// What a job's `env` may set while a whitelist (the hub's or the token's) is in force.
    public var environmentPolicy = EnvironmentPolicy()
    /// Finished jobs kept (http-runner's `-n`); nil keeps all. Queued and running jobs are never purged.
    public var maxFinishedJobs: Int?
    /// Bytes kept per output stream of a job; the rest is counted and flagged as truncated.
    public var maxOutputBytes = Self.defaultMaxOutputBytes
    /// 1 GiB: output lives in files and is read back a piece at a time, so a large cap costs disk
    /// only, never the hub's memory (the JSON views carry at most `CompatJob.inlineOutputBytes`).
    public static let defaultMaxOutputBytes = 1 << 30
    /// Seconds a job may run: jobs without a timeout get it, jobs asking for more are refused. nil: no limit.
    public var maxTimeout: Double?
    /// Jobs that may wait queued at once; submissions beyond get 429. nil: no limit.
    public var maxQueued: Int?
    /// Jobs of one token that may wait queued at once, unless the token has its own cap. nil: no limit.
    public var maxQueuedPerToken: Int?
    /// Listen beyond loopback even when no token exists (nothing authenticates requests then).
    public var insecureNoAuth = false
    /// Listen beyond loopback over plain HTTP although tokens are in use (they travel in clear text).
    public var insecureHTTP = false

    /// Names the hub answers to besides loopback names and IP addresses (`--public-name`): a
    /// request with another `Host` is refused, which defeats DNS rebinding.
    public var publicNames: [String] = []
    /// xterm.js for the web page's terminal; nil: the terminal runs in line mode.
    public var xterm: XtermAssets?

    /// 127.0.0.0/8, ::1 and localhost: only this machine can connect. Addresses are parsed, so
    /// `127.evil.example` is a name like any other, not loopback.
    public static func isLoopback(_ host: String) -> Bool {
        let host = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        if host == "localhost" { return true }
        switch ipAddress(host) {
        case .v4(let bytes): return bytes.0 == 127
        case .v6(let bytes): return bytes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        case nil: return false
        }
    }

    /// An IP address literal, parsed (brackets allowed around IPv6).
    public enum IPAddress: Sendable {
        case v4((UInt8, UInt8, UInt8, UInt8))
        case v6([UInt8])
    }

    public static func ipAddress(_ text: String) -> IPAddress? {
        // Brackets trimmed by hand: Foundation's CharacterSet and trimming were 3% of a lookup's
        // CPU, the browser guard asking this of every request's `Host`.
        var unbracketed = Substring(text)
        while let first = unbracketed.first, first == "[" || first == "]" { unbracketed.removeFirst() }
        while let last = unbracketed.last, last == "[" || last == "]" { unbracketed.removeLast() }
        let text = String(unbracketed)
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            let value = UInt32(bigEndian: v4.s_addr)
            return .v4((UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)))
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return .v6(withUnsafeBytes(of: &v6) { Array($0) })
        }
        return nil
    }

    /// PEM certificate chain and key: the hub serves HTTPS and WSS only. nil: plain HTTP.
    public var tlsCertificate: String?
    public var tlsKey: String?

    /// A connection's first request head must arrive within this (slowloris); a keep-alive
    /// connection idle this long is closed.
    public var headerDeadline: Duration = .seconds(10)
    public var idleTimeout: Duration = .seconds(60)
    /// A client that reads nothing the hub writes for this long is disconnected.
    public var stallTimeout: Duration = .seconds(60)

    /// Largest request body accepted (413 beyond).
    public var maxBodyBytes = 1 << 20
    /// On Ctrl-C, how long running jobs may go on before they are killed and recorded.
    public var shutdownGrace: Duration = .seconds(10)
    /// Between SIGTERM and SIGKILL when a job is canceled or times out.
    public var killGrace: Duration = .seconds(5)
    /// Callback delivery: attempts, and the first pause between them (doubled each time).
    public var callbackAttempts = 3
    public var callbackBackoff: Duration = .seconds(1)
    public var callbackTimeout: Duration = .seconds(10)
    /// When set, every callback carries `X-Xn-Signature: sha256=HEX`, the HMAC-SHA256 of
    /// "TIMESTAMP.BODY" (TIMESTAMP as in `X-Notify-Timestamp`) with this key.
    public var callbackSecret: [UInt8]?
    /// Where a callback may go (lowercase host names, addresses, CIDR networks); empty allows
    /// any but link-local and metadata addresses (see `CallbackPolicy`).
    public var callbackHosts: Set<String> = []

    var callbackPolicy: CallbackPolicy { CallbackPolicy(callbackHosts) }

    /// Why `callback` may not be used on this hub, or nil when it may.
    public func refusal(ofCallback callback: String) -> String? {
        callbackPolicy.refusal(ofURL: callback)
    }

    /// `--callback-hosts` entries that are neither host names nor addresses or networks.
    public static func invalidCallbackHosts(_ entries: [String]) -> [String] {
        CallbackPolicy.invalidEntries(entries)
    }

    /// The most any job may ask for (`limits` in its spec); the hub's own slots apply them to
    /// every job they run.
    public var jobLimits = JobLimits()

    /// A worker silent this long is lost; a disconnected worker has this long to come back.
    public var heartbeatTimeout: Duration = .seconds(5)
    /// How often workers send a heartbeat: five times per timeout.
    public var heartbeatInterval: Duration { heartbeatTimeout / 5 }

    public init() {}
}
