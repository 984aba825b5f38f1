import Foundation

/// Paths of the package and of the binaries built beside this test bundle.
enum BuildPaths {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `swiftwise` executable of the same build as the running tests.
    static var swiftwise: URL {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The test binary may sit inside an .xctest bundle folder.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("swiftwise").path) && dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("swiftwise")
    }
}

/// A child process whose output is collected, killed when the test is done with it.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()

    init(_ executable: URL, _ arguments: [String]) throws {
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    func kill(signal: Int32 = SIGKILL) {
        if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
        process.waitUntilExit()
    }

    /// Everything the child printed (call after it exited).
    var log: String {
        String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    deinit { kill() }
}
