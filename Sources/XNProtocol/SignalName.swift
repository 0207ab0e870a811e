/// The signals a client may send a running job, by name (Linux numbering).
public enum SignalName {
    public static let numbers: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "ALRM": 14, "TERM": 15,
        "CONT": 18, "STOP": 19, "TSTP": 20, "WINCH": 28,
    ]

    /// Why a job killed by `signal` died, for its `err`: the limits' signals say which limit.
    public static func death(_ signal: Int32) -> String {
        switch signal {
        case 24: "killed by SIGXCPU: the job used up its CPU time limit"
        case 25: "killed by SIGXFSZ: the job wrote a file beyond its size limit"
        case 9: "killed by SIGKILL (signal 9)"
        default:
            if let name = numbers.first(where: { $0.value == signal })?.key {
                "killed by SIG\(name) (signal \(signal))"
            } else {
                "killed by signal \(signal)"
            }
        }
    }

    /// The number for `INT`, `SIGINT` or `2` (any case); nil for anything not in `numbers`.
    public static func parse(_ text: String) -> Int32? {
        if let number = Int32(text) { return numbers.values.contains(number) ? number : nil }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        return numbers[name]
    }
}
