import Foundation

/// xterm.js for the browser terminal, read once at start. It is third-party code, so it is not in
/// the repository or the binary: `scripts/fetch-xterm.sh` installs Debian's build beside the
/// executable, or a system's `libjs-xterm` provides it. Without it the terminal runs in line mode.
public struct XtermAssets: Sendable {
    /// Files by the name the page asks for (`xterm.js`, `xterm.css`, `xterm-addon-fit.js`).
    let files: [String: [UInt8]]
    /// The folder they came from, for the log.
    public let folder: String

    /// Where xterm.js is looked for, in order (after an explicit `--xterm-dir`):
    /// `<executable's folder>/../share/xn/xterm` (the release tarball's layout, and `.build/share`
    /// for `.build/release/xn`), one folder further up (`.build/share` for the
    /// `.build/x86_64-unknown-linux-gnu/release/xn` that `swift run` starts), then Debian's
    /// `/usr/share/javascript/xterm`.
    public static func candidates(executable: String, system: String = "/usr/share/javascript/xterm") -> [String] {
        func up(_ path: String) -> String {
            path.isEmpty || path == "." ? ".." : (path as NSString).deletingLastPathComponent
        }
        let parent = up((executable as NSString).deletingLastPathComponent)
        let share = { (base: String) in
            ((base.isEmpty ? "." : base) as NSString).appendingPathComponent("share/xn/xterm")
        }
        return [share(parent), share(up(parent)), system]
    }

    /// The first candidate holding a real build, or nil. Debian bookworm's `libjs-xterm` is a
    /// 288-byte stub; a real xterm.js is some hundreds of kilobytes and defines `Terminal`.
    public static func load(from candidates: [String]) -> XtermAssets? {
        for folder in candidates {
            if let assets = try? load(folder: folder) { return assets }
        }
        return nil
    }

    /// The assets in `folder`, or why they are not usable (for an explicit `--xterm-dir`).
    public static func load(folder: String) throws -> XtermAssets {
        var files: [String: [UInt8]] = [:]
        for name in ["xterm.js", "xterm.css"] {
            let path = (folder as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw XtermMissing("\(path) cannot be read")
            }
            files[name] = [UInt8](data)
        }
        guard let script = files["xterm.js"], script.count >= 100_000,
            String(decoding: script, as: UTF8.self).contains("Terminal")
        else { throw XtermMissing("\(folder)/xterm.js is not a build of xterm.js (Debian bookworm's is a stub)") }
        // The fit addon is optional: without it the page sizes the terminal itself.
        let fit = (folder as NSString).appendingPathComponent("xterm-addon-fit.js")
        let addonFit = (folder as NSString).appendingPathComponent("addons/fit/xterm-addon-fit.js")
        if let data = FileManager.default.contents(atPath: fit) ?? FileManager.default.contents(atPath: addonFit) {
            files["xterm-addon-fit.js"] = [UInt8](data)
        }
        return XtermAssets(files: files, folder: URL(fileURLWithPath: folder).standardizedFileURL.path)
    }

    public struct XtermMissing: Error, CustomStringConvertible {
        public let description: String

        init(_ description: String) {
            self.description = description
        }
    }
}
