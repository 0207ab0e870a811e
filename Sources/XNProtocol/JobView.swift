import Foundation

/// A job as the v1 API shows it. Output text is UTF-8 with invalid bytes replaced; the raw
/// endpoints give the exact bytes.
public struct JobView: Sendable, Codable, Equatable {
    public var id: String
    public var name: String?
    public var state: JobState
    public var command: String
    /// The file that ran, when the hub resolved `command` (a whitelist): `/usr/bin/echo` for `echo`.
    public var program: String?
    public var args: [String]
    public var cwd: String?
    public var timeout: Double?
    public var callback: String?
    public var createdAt: String
    public var startedAt: String?
    public var finishedAt: String?
    public var exitCode: Int32?
    public var signal: Int32?
    public var err: String?
    public var stdout: String?
    public var stderr: String?
    public var stdoutBytes: Int
    public var stderrBytes: Int
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    public var callbackStatus: String?
    /// Attempts, state and last result of the callback's delivery.
    public var callbackDelivery: CallbackDeliveryView?
    /// CPU time and peak memory of the job, once it ended.
    public var usage: JobUsage?
    public var worker: String?
    public var labels: [String: String]?
    public var retries: Int?
    public var tty: JobTerminal?
    public var interactive: Bool?
    public var attempts: Int
    public var limits: JobLimits?
    public var maxOutput: Int?
    /// The job runs in a sandbox (it asked, or its token forces it); absent when not.
    public var isolate: Bool?
    /// An isolated job that keeps the network; absent when not.
    public var network: Bool?
    /// The name of the token that submitted it, on a hub with tokens.
    public var owner: String?
    /// Why a queued job has not started ("waiting for a worker with gpu=1").
    public var waiting: String?

    enum CodingKeys: String, CodingKey {
        case id, name, state, command, program, args, cwd, timeout, callback
        case createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
        case exitCode = "exit_code", signal, err, stdout, stderr
        case stdoutBytes = "stdout_bytes", stderrBytes = "stderr_bytes"
        case stdoutTruncated = "stdout_truncated", stderrTruncated = "stderr_truncated"
        case callbackStatus = "callback_status", callbackDelivery = "callback_delivery", worker, labels, retries, tty,
            interactive, attempts, limits, isolate, network
        case maxOutput = "max_output", owner, waiting, usage
    }

    /// The view of `record`; pass output bytes to include the text fields (`get`), nil to omit them (`list`).
    public init(_ record: JobRecord, stdout: [UInt8]? = nil, stderr: [UInt8]? = nil, waiting: String? = nil) {
        id = record.id.rawValue
        name = record.spec.name
        state = record.state
        command = record.spec.command
        program = record.spec.program
        args = record.spec.args
        cwd = record.spec.cwd
        timeout = record.spec.timeout
        callback = record.spec.callback
        createdAt = Timestamp.format(record.createdAt)
        startedAt = record.startedAt.map(Timestamp.format)
        finishedAt = record.finishedAt.map(Timestamp.format)
        exitCode = record.exitCode
        signal = record.signal
        err = record.err
        self.stdout = stdout.map { String(decoding: $0, as: UTF8.self) }
        self.stderr = stderr.map { String(decoding: $0, as: UTF8.self) }
        stdoutBytes = record.stdoutBytes
        stderrBytes = record.stderrBytes
        stdoutTruncated = record.stdoutTruncated
        stderrTruncated = record.stderrTruncated
        callbackStatus = record.callbackStatus
        callbackDelivery = record.callbackDelivery.map(CallbackDeliveryView.init)
        usage = record.usage
        worker = record.worker
        labels = record.spec.labels.isEmpty ? nil : record.spec.labels
        retries = record.spec.retries == 0 ? nil : record.spec.retries
        tty = record.spec.tty
        interactive = record.spec.keepsInputOpen ? true : nil
        attempts = record.attempts
        limits = record.spec.limits
        maxOutput = record.spec.maxOutput
        isolate = record.spec.isolate ? true : nil
        network = record.spec.network ? true : nil
        owner = record.owner
        self.waiting = waiting
    }
}

/// One page of `GET /v1/jobs`.
public struct JobPage: Sendable, Codable, Equatable {
    public var jobs: [JobView]
    /// Pass as `before` to get the next (older) page; absent on the last page.
    public var next: String?

    public init(jobs: [JobView], next: String?) {
        self.jobs = jobs
        self.next = next
    }
}

/// Times on the wire: RFC 3339 in UTC with milliseconds.
public enum Timestamp {
    /// `2026-12-03T12:51:42.123Z`. Written by hand from the integer milliseconds: every job view
    /// carries two or three of these, and Foundation's formatter (kept for years beyond 0–9999)
    /// costs more than the rest of a small view's encoding.
    public static func format(_ milliseconds: Int64) -> String {
        let dayMilliseconds: Int64 = 86_400_000
        var days = milliseconds / dayMilliseconds
        var time = milliseconds % dayMilliseconds
        if time < 0 {
            time += dayMilliseconds
            days -= 1
        }
        let (year, month, day) = civilDate(daysSince1970: days)
        guard (0...9999).contains(year) else { return formatWithFoundation(milliseconds) }
        var text = Array("0000-00-00T00:00:00.000Z".utf8)
        func put(_ value: Int64, at start: Int, digits: Int) {
            var rest = value
            for index in stride(from: start + digits - 1, through: start, by: -1) {
                text[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            }
        }
        put(year, at: 0, digits: 4)
        put(month, at: 5, digits: 2)
        put(day, at: 8, digits: 2)
        put(time / 3_600_000, at: 11, digits: 2)
        put(time / 60_000 % 60, at: 14, digits: 2)
        put(time / 1000 % 60, at: 17, digits: 2)
        put(time % 1000, at: 20, digits: 3)
        return String(decoding: text, as: UTF8.self)
    }

    /// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
    /// `civil_from_days`, in 400-year eras).
    static func civilDate(daysSince1970 days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func formatWithFoundation(_ milliseconds: Int64) -> String {
        // The formatter truncates to milliseconds, and about half of all `ms / 1000` values fall just
        // below the exact one in binary (…20.123 is …20.12299…): aim at the middle of the millisecond.
        let date = Date(timeIntervalSince1970: (Double(milliseconds) + 0.5) / 1000)
        return date.formatted(
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    public static func now() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }
}
