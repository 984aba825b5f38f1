import Foundation

/// The default model fetched by scripts/fetch-model.sh, and the committed fixtures.
enum TestData {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func fixture(_ relative: String) -> URL {
        packageRoot.appendingPathComponent("Tests/Fixtures/" + relative)
    }

    /// The SmolLM2-135M-Instruct Q4_1 GGUF; the test suite's runner (scripts/test.sh, .ci/run) fetches it first.
    static var defaultModelPath: String {
        let cache = ProcessInfo.processInfo.environment["SWIFTWISE_CACHE"]
            ?? (NSHomeDirectory() + "/.cache/swiftwise")
        return cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    static func json(_ relative: String) throws -> [String: Any] {
        let data = try Data(contentsOf: fixture(relative))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }
}
