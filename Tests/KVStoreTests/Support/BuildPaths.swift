import Foundation
import ServiceKit

/// Paths of the package and of the binaries built beside this test bundle.
enum BuildPaths {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `swiftwise` executable of the same build as the running tests.
    static var swiftwise: String {
        var dir = URL(fileURLWithPath: ChildProcess.currentExecutable).deletingLastPathComponent()
        // The test binary may sit inside an .xctest bundle folder.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("swiftwise").path) && dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("swiftwise").path
    }
}

extension ChildProcess {
    /// `swiftwise ARGUMENTS` with its output in a log file of its own (read with `log(of:)`).
    static func swiftwise(_ arguments: [String], log: String) throws -> ChildProcess {
        try ChildProcess(name: "swiftwise", executable: BuildPaths.swiftwise, arguments: arguments, logFile: log)
    }
}

/// What a child wrote to its log file so far.
func log(of path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
