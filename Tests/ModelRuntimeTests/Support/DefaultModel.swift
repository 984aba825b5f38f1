import Foundation
import Models

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

extension LlamaModel {
    /// `steps` greedy tokens after `prompt` (argmax, ties to the lowest id), one token per forward pass.
    func greedy(_ prompt: [Int], steps: Int) -> [Int] {
        let cache = KVCache(config: config, capacity: prompt.count + steps + 1)
        var logits = forward(prompt, cache: cache)
        var out: [Int] = []
        for _ in 0..<steps {
            let next = logits.indices.max { logits[$0] < logits[$1] }!
            out.append(next)
            logits = forward([next], cache: cache)
        }
        return out
    }
}
