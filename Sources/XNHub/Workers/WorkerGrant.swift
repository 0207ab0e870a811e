import XNProtocol
import XNStore

/// What the token that opened a worker link lets the worker announce in its hello. A worker
/// token names one worker, the labels it may carry and the slots it may offer, so a stolen or
/// misused token cannot pose as another worker, attract jobs meant for GPUs, or claim 1,024 slots.
struct WorkerGrant: Sendable, Equatable {
    /// The token's name; nil on a hub without tokens. A worker connected under one token is
    /// never replaced by a connection under another.
    let token: String?
    /// The only name the worker may use; nil: any (admin tokens, hubs without tokens).
    let name: String?
    /// Labels it may announce, each with this value; nil: any.
    let labels: [String: String]?
    /// Most slots it may offer; nil: any.
    let slots: Int?

    static let open = WorkerGrant(token: nil, name: nil, labels: nil, slots: nil)

    init(token: String?, name: String?, labels: [String: String]?, slots: Int?) {
        self.token = token
        self.name = name
        self.labels = labels
        self.slots = slots
    }

    /// A worker token grants its own name, its labels (none when it has none) and its slots;
    /// an admin token, anything.
    init(caller: Caller) {
        guard let token = caller.token else {
            self = .open
            return
        }
        guard token.role == .worker else {
            self.init(token: token.name, name: nil, labels: nil, slots: nil)
            return
        }
        self.init(token: token.name, name: token.name, labels: token.labels ?? [:], slots: token.slots)
    }

    /// Why `hello` claims more than this grant, or nil when it does not.
    func refusal(of hello: WorkerHello) -> String? {
        let whose = WireProtocol.grantRefusalPrefix + (token ?? "") + "'"
        if let name, hello.name != name {
            return "\(whose) is for the worker named '\(name)', not '\(hello.name)': start it with --name \(name)"
        }
        if let labels {
            for (label, value) in hello.labels.sorted(by: { $0.key < $1.key }) where labels[label] != value {
                let granted =
                    labels.isEmpty
                    ? "no labels" : labels.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: ",")
                return "\(whose) does not grant the label \(label)=\(value) (it grants \(granted))"
            }
        }
        if let slots, hello.slots > slots {
            return "\(whose) grants at most \(slots) slot(s), not \(hello.slots)"
        }
        return nil
    }
}
