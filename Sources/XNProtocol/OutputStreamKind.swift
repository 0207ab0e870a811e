/// Which of a job's output streams bytes belong to. A `tty` job has one combined stream, stdout.
///
/// The raw value is the stream's number on the wire (output frames) and in the store.
public enum OutputStreamKind: UInt8, Sendable, Hashable, CaseIterable, Codable {
    case stdout = 1
    case stderr = 2

    /// "stdout" or "stderr", as routes and messages name it.
    public var name: String {
        switch self {
        case .stdout: "stdout"
        case .stderr: "stderr"
        }
    }
}
