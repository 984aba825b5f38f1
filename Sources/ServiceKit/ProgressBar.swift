import Foundation

/// A one-line progress bar on standard error (redrawn in place on a terminal; only the end line otherwise, so logs
/// stay readable).
public enum ProgressBar {
    public static func draw(label: String, done: Int, total: Int) {
        let tty = isatty(STDERR_FILENO) == 1
        guard total > 0, tty || done == total else { return }
        let width = 30
        let filled = width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = "\(label) [\(bar)] \(done)/\(total)"
        FileHandle.standardError.write(Data(((tty ? "\r" : "") + line + (done == total ? "\n" : "")).utf8))
    }
}
