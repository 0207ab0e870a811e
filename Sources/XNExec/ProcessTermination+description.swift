#if canImport(Glibc)
    import Glibc
#endif

extension ProcessTermination: CustomStringConvertible {
    public var description: String {
        switch self {
        case .exited(let code): "exited with code \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}
