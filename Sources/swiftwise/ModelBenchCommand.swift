import ArgumentParser
import Foundation
import ModelFiles
import Models
import ServiceKit

/// `swiftwise bench model MODEL`: prompt and decode throughput like llama-bench's pp/tg tests
/// (a prompt of N tokens in one batch, then M tokens generated one by one), best of several runs.
struct ModelBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Prompt (pp) and decode (tg) tokens/s of the CPU engine on a GGUF model.")

    @Argument(help: "A GGUF model file.") var model: String
    @Option(help: "Prompt tokens (pp test).") var promptTokens = 128
    @Option(help: "Generated tokens (tg test).") var decodeTokens = 64
    @Option(help: "Runs; the best is reported, as llama-bench reports averages over its own repetitions.") var repeats = 3
    @Flag(help: "Use the fp32 reference path.") var reference = false
    @Flag(help: "Print one JSON line.") var json = false

    func run() throws {
        let gguf = try GGUFFile(path: model)
        let llama = try LlamaModel(gguf: gguf, reference: reference)
        let prompt = (0..<promptTokens).map { 1000 + ($0 * 37) % 20000 }
        var bestPrompt = 0.0, bestDecode = 0.0
        for _ in 0..<repeats {
            let cache = KVCache(config: llama.config, capacity: promptTokens + decodeTokens + 1)
            var start = ContinuousClock.now
            _ = llama.forward(prompt, cache: cache)
            bestPrompt = max(bestPrompt, Double(promptTokens) / (ContinuousClock.now - start).seconds)
            let decodeCache = KVCache(config: llama.config, capacity: decodeTokens + 1)
            start = ContinuousClock.now
            var token = 1
            for _ in 0..<decodeTokens {
                let logits = llama.forward([token], cache: decodeCache)
                token = logits.indices.max { logits[$0] < logits[$1] }!
            }
            bestDecode = max(bestDecode, Double(decodeTokens) / (ContinuousClock.now - start).seconds)
        }
        if json {
            print(#"{"engine":"swiftwise","pp":\#(promptTokens),"tg":\#(decodeTokens),"pp_tok_s":\#(bestPrompt),"tg_tok_s":\#(bestDecode)}"#)
        } else {
            print(String(format: "swiftwise pp%d: %.1f tok/s   tg%d: %.1f tok/s", promptTokens, bestPrompt, decodeTokens, bestDecode))
        }
    }

}
