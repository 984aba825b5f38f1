import Foundation
import Jinja
import ModelFiles
import Models
import OpenAIAPI
import Tokenizers

/// A loaded checkpoint as the API sees it: the network, its tokenizer and chat template, and the names it answers to.
public final class ServedModel: Sendable {
    public let config: ModelConfig
    public let tokenizer: BPETokenizer
    public let chatTemplate: Template?
    public let names: [String]
    public let maxModelLen: Int
    let bosText: String
    let eosText: String

    public init(config: ModelConfig, tokenizer: BPETokenizer, chatTemplate: String?, names: [String], maxModelLen: Int) throws {
        self.config = config
        self.tokenizer = tokenizer
        self.chatTemplate = try chatTemplate.map { try Template($0) }
        self.names = names
        self.maxModelLen = maxModelLen
        bosText = tokenizer.bosTokenID.map { tokenizer.vocabulary[$0] } ?? ""
        eosText = tokenizer.eosTokenID.map { tokenizer.vocabulary[$0] } ?? ""
    }

    /// The tokenizer, chat template and limits of a GGUF file or a Hugging Face folder (the weights are loaded
    /// by the backend: `LlamaModel` on CPU, `GPULlama` on CUDA).
    public static func load(checkpoint: LlamaCheckpoint, path: String, names: [String], maxModelLen: Int?) throws -> ServedModel {
        let tokenizer: BPETokenizer, template: String?
        if let gguf = checkpoint.store as? GGUFFile {
            tokenizer = try BPETokenizer(gguf: gguf)
            template = gguf.string("tokenizer.chat_template")
        } else {
            tokenizer = try BPETokenizer(huggingFaceDirectory: path)
            template = try HFChatTemplate.load(directory: path)
        }
        let config = checkpoint.config
        guard tokenizer.vocabulary.count <= config.vocabSize else {
            throw ModelFileError.malformed(path: path, field: "vocabulary", "the tokenizer has \(tokenizer.vocabulary.count) tokens, the model \(config.vocabSize)")
        }
        let limit = min(maxModelLen ?? config.contextLength, config.contextLength)
        return try ServedModel(config: config, tokenizer: tokenizer, chatTemplate: template, names: names, maxModelLen: limit)
    }

    /// The default model name: the MODEL argument, as vLLM does.
    public var primaryName: String { names[0] }

    func answers(to name: String?) -> Bool {
        guard let name else { return true }
        return names.contains(name)
    }

    /// Renders `messages` with the chat template (transformers' settings) and returns the prompt text.
    func renderChat(_ messages: [JSONValue], tools: JSONValue?, addGenerationPrompt: Bool, extra: [String: JSONValue]) throws(OpenAIError) -> String {
        guard let chatTemplate else {
            throw OpenAIError(status: 400, message: "this model has no chat template; use /v1/completions")
        }
        var context: [String: Value] = [
            "messages": .array(messages.map(Self.templateValue)),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosText),
            "eos_token": .string(eosText),
        ]
        if let tools { context["tools"] = Self.templateValue(tools) }
        for (key, value) in extra { context[key] = Self.templateValue(value) }
        do {
            return try chatTemplate.render(context)
        } catch {
            throw OpenAIError(status: 400, message: "chat template failed: \(error)")
        }
    }

    /// JSON → template value; message content given as a list of parts is joined to its text (what string-only
    /// templates expect).
    static func templateValue(_ json: JSONValue) -> Value {
        switch json {
        case .null: return .none
        case .bool(let b): return .bool(b)
        case .number(let n): return n.rounded() == n && abs(n) < 1e15 ? .int(Int(n)) : .double(n)
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(templateValue))
        case .object(let o):
            var pairs: [(String, Value)] = []
            for key in o.keys.sorted(by: messageKeyOrder) {
                var value = o[key]!
                if key == "content", case .array(let parts) = value {
                    value = .string(parts.compactMap { $0["text"]?.stringValue }.joined(separator: "\n"))
                }
                pairs.append((key, templateValue(value)))
            }
            return .object(pairs)
        }
    }

    /// JSON objects arrive unordered; give messages the conventional key order (role first) for `tojson`.
    private static func messageKeyOrder(_ a: String, _ b: String) -> Bool {
        let order = ["role": 0, "content": 1, "name": 2, "tool_calls": 3, "tool_call_id": 4, "type": 5, "function": 6]
        let (x, y) = (order[a] ?? 100, order[b] ?? 100)
        return x != y ? x < y : a < b
    }
}
