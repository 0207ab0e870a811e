import HTTPTypes
import XNProtocol
import XNStore

/// Why a well-formed job may not be submitted here.
struct AdmissionRefusal: Error {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    let field: String
}

extension HubConfiguration {
    /// The spec as it will run (`program` set to the real file the whitelists matched, the
    /// token's labels added), or why the hub or the caller's token refuses it.
    func admit(_ spec: JobSpec, by caller: Caller) -> Result<JobSpec, AdmissionRefusal> {
        var spec = spec
        if let refusal = Self.check(&spec, whitelist, whose: nil) { return .failure(refusal) }
        if let own = caller.whitelist, let refusal = Self.check(&spec, own, whose: "this token's whitelist") {
            return .failure(refusal)
        }
        if !whitelist.isEmpty || caller.whitelist != nil {
            for name in spec.env.keys.sorted() {
                if let message = environmentPolicy.refusal(of: name) {
                    return .failure(
                        AdmissionRefusal(
                            status: .forbidden, code: "env_not_allowed", message: message, field: "env.\(name)"))
                }
            }
        }
        for (name, value) in caller.token?.labels ?? [:] {
            if let asked = spec.labels[name], asked != value {
                return .failure(
                    AdmissionRefusal(
                        status: .forbidden, code: "labels_not_allowed",
                        message: "this token's jobs run only where \(name)=\(value), not \(name)=\(asked)",
                        field: "labels"))
            }
            spec.labels[name] = value
        }
        if let token = caller.token, token.isolate {
            spec.isolate = true
            if spec.network && !token.allowNetwork {
                return .failure(
                    AdmissionRefusal(
                        status: .forbidden, code: "network_not_allowed",
                        message: "this token's jobs run isolated without network (its token lacks allow_network)",
                        field: "network"))
            }
        }
        if let refusal = refusalOfLimits(&spec) { return .failure(refusal) }
        if let callback = spec.callback, let refusal = refusal(ofCallback: callback) {
            return .failure(
                AdmissionRefusal(status: .badRequest, code: "invalid_field", message: refusal, field: "callback"))
        }
        return .success(spec)
    }

    private static func check(_ spec: inout JobSpec, _ whitelist: CommandWhitelist, whose: String?) -> AdmissionRefusal?
    {
        guard !whitelist.isEmpty else { return nil }
        switch whitelist.check(spec.executable) {
        case .success(let program):
            spec.program = program
            return nil
        case .failure(let refusal):
            return AdmissionRefusal(
                status: .forbidden, code: "command_not_allowed",
                message: whose.map { "\(refusal.message) (\($0))" } ?? refusal.message,
                field: "command")
        }
    }

    /// A job may lower the hub's limits, never raise them; without a timeout it gets `--max-timeout`.
    private func refusalOfLimits(_ spec: inout JobSpec) -> AdmissionRefusal? {
        func refuse(_ field: String, _ message: String) -> AdmissionRefusal {
            AdmissionRefusal(status: .badRequest, code: "invalid_field", message: message, field: field)
        }
        let hub = jobLimits.byName
        for (index, asked) in (spec.limits ?? JobLimits()).byName.enumerated() {
            if let value = asked.value, let most = hub[index].value, value > most {
                return refuse(
                    "limits.\(asked.name)",
                    "limits.\(asked.name) \(value) is above this hub's limit of \(most) (--limit-\(Self.flagNames[index]))"
                )
            }
        }
        if let asked = spec.maxOutput, asked > maxOutputBytes {
            return refuse("max_output", "max_output \(asked) is above this hub's --max-output \(maxOutputBytes)")
        }
        if let most = maxTimeout {
            guard let asked = spec.timeout else {
                spec.timeout = most
                return nil
            }
            if asked > most {
                return refuse(
                    "timeout",
                    "timeout \(formatSeconds(asked)) is above this hub's --max-timeout \(formatSeconds(most))")
            }
        }
        return nil
    }

    private static let flagNames = ["cpu", "memory", "files", "procs", "cpu-percent"]

    /// Bytes kept per stream of a job with `spec`.
    func outputCap(of spec: JobSpec) -> Int {
        spec.outputCap(within: maxOutputBytes)
    }

    /// How many jobs of `caller` may wait queued: its token's own cap, else the hub's per-token one.
    func queueCap(of caller: Caller) -> Int? {
        guard let token = caller.token else { return nil }
        return token.maxQueued ?? maxQueuedPerToken
    }
}
