import ArgumentParser
import Foundation
import Jinja
import ModelFiles
import Models
import Tokenizers
import ServiceKit

/// `swiftwise generate MODEL --prompt ...`: one greedy generation, streamed, with prompt and decode speed.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Greedy generation from a GGUF model, for quick checks (prints tokens/s).")

    @Argument(help: "A GGUF model file.") var model: String
    @Option(help: "The prompt text.") var prompt: String
    @Option(help: "Tokens to generate.") var maxTokens = 32
    @Flag(help: "Wrap the prompt as a user message with the model's chat template.") var chat = false
    @Flag(help: "Dequantize all weights to fp32 (the reference path) instead of computing on quantized blocks.") var reference = false

    func run() throws {
        let loadStart = ContinuousClock.now
        let gguf = try GGUFFile(path: model)
        let tokenizer = try BPETokenizer(gguf: gguf)
        let llama = try LlamaModel(gguf: gguf, reference: reference)
        var text = prompt
        if chat {
            guard let source = gguf.string("tokenizer.chat_template") else { throw ValidationError("\(model) has no chat template") }
            text = try Template(source).render([
                "messages": .array([.object([("role", .string("user")), ("content", .string(prompt))])]),
                "add_generation_prompt": .bool(true),
            ])
        }
        let ids = tokenizer.encode(text, parseSpecial: chat)
        let cache = KVCache(config: llama.config, capacity: ids.count + maxTokens + 1)
        FileHandle.standardError.write(Data("loaded \(llama.config.architecture) in \(ms(ContinuousClock.now - loadStart)) ms; prompt \(ids.count) tokens\n".utf8))

        let prefillStart = ContinuousClock.now
        var logits = llama.forward(ids, cache: cache)
        let prefillTime = ContinuousClock.now - prefillStart
        var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        FileHandle.standardOutput.write(Data(text.utf8))
        let decodeStart = ContinuousClock.now
        var generated = 0
        while generated < maxTokens {
            let next = argmax(logits)
            generated += 1
            if tokenizer.eosTokenIDs.contains(next) { break }
            FileHandle.standardOutput.write(Data(detokenizer.append(next).utf8))
            if generated == maxTokens { break }
            logits = llama.forward([next], cache: cache)
        }
        print(detokenizer.finish())
        let decodeTime = ContinuousClock.now - decodeStart
        let prefillRate = Double(ids.count) / prefillTime.seconds
        let decodeRate = Double(generated) / decodeTime.seconds
        FileHandle.standardError.write(Data(String(format: "prompt: %d tokens, %.1f tok/s; decode: %d tokens, %.1f tok/s\n",
                                                   ids.count, prefillRate, generated, decodeRate).utf8))
    }

    private func argmax(_ x: [Float]) -> Int {
        var best = 0
        for i in 1..<x.count where x[i] > x[best] { best = i }
        return best
    }


    private func ms(_ d: Duration) -> Int { Int(d.seconds * 1000) }
}
