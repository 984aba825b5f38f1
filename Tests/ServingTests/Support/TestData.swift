import Foundation

/// Paths of the package, the built binary and the default model (fetched by scripts/fetch-model.sh before tests).
enum TestData {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var defaultModelPath: String {
        let cache = ProcessInfo.processInfo.environment["SWIFTWISE_CACHE"] ?? (NSHomeDirectory() + "/.cache/swiftwise")
        return cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    /// The `swiftwise` executable of the same build as the running tests.
    static var swiftwise: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("swiftwise").path) && dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("swiftwise").path
    }

    static func temporaryDirectory() -> String {
        let dir = NSTemporaryDirectory() + "swiftwise-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}
