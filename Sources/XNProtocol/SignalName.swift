/// The signals a client may send a running job, by name (Linux numbering).
public enum SignalName {
    public static let numbers: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "ALRM": 14, "TERM": 15,
        "CONT": 18, "STOP": 19, "TSTP": 20, "WINCH": 28,
    ]

    /// The number for `INT`, `SIGINT` or `2` (any case); nil for anything not in `numbers`.
    public static func parse(_ text: String) -> Int32? {
        if let number = Int32(text) { return numbers.values.contains(number) ? number : nil }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        return numbers[name]
    }
}
