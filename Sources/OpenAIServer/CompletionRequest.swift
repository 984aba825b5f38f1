import Engine
import OpenAIAPI

/// A validated `/v1/chat/completions` or `/v1/completions` body: token ids per prompt and sampling settings.
/// Every bad value is a 400 naming the field; unknown fields are ignored, as vLLM does.
struct CompletionRequest {
    enum Kind { case chat, completion }
    var kind: Kind
    var model: String?
    var prompts: [[Int]] = []
    var params = SamplingParams()
    var n = 1
    var stream = false
    var includeUsage = false
    var stops: [String] = []
    /// Chat: `logprobs: true` plus `top_logprobs`; completions: `logprobs: N`.
    var logprobs: Int?
    var echo = false
    /// vLLM's `return_tokens_as_token_ids`: logprob tokens as "token_id:N" (exact ids, whatever the vocabulary).
    var tokensAsIDs = false

    init(kind: Kind, json: JSONValue, served: ServedModel) throws(OpenAIError) {
        self.kind = kind
        let body = Fields(json)
        model = try body.string("model")
        guard served.answers(to: model) else {
            throw OpenAIError(status: 404, message: "The model `\(model ?? "")` does not exist.", param: "model")
        }
        switch kind {
        case .chat:
            guard let messages = json["messages"]?.arrayValue else {
                throw OpenAIError(status: 400, message: "'messages' is required and must be a list", param: "messages")
            }
            guard !messages.isEmpty else { throw OpenAIError(status: 400, message: "'messages' must not be empty", param: "messages") }
            for (i, m) in messages.enumerated() {
                guard case .object = m, m["role"]?.stringValue != nil else {
                    throw OpenAIError(status: 400, message: "messages[\(i)] must be an object with a string 'role'", param: "messages")
                }
            }
            var extra: [String: JSONValue] = [:]
            if case .object(let kwargs)? = json["chat_template_kwargs"] { extra = kwargs }
            let addGenerationPrompt = try body.bool("add_generation_prompt") ?? true
            let text = try served.renderChat(messages, tools: json["tools"], addGenerationPrompt: addGenerationPrompt, extra: extra)
            // The template wrote any BOS itself; special-token text in it is parsed.
            prompts = [served.tokenizer.encode(text, parseSpecial: true, addSpecial: false)]
            if try body.bool("logprobs") == true { logprobs = try body.int("top_logprobs", in: 0...20) ?? 0 }
            if let m = try body.int("max_completion_tokens", in: 1...Int(Int32.max)) { params.maxTokens = m }
        case .completion:
            let addSpecial = try body.bool("add_special_tokens") ?? true
            prompts = try Self.prompts(json["prompt"], served: served, addSpecial: addSpecial)
            logprobs = try body.int("logprobs", in: 0...20)
            echo = try body.bool("echo") ?? false
            if echo { throw OpenAIError(status: 400, message: "'echo' is not supported", param: "echo") }
        }
        let longest = prompts.map(\.count).max() ?? 0
        if longest >= served.maxModelLen {
            throw OpenAIError(status: 400, message: "This model's maximum context length is \(served.maxModelLen) tokens. However, your prompt has \(longest) tokens. Please reduce the length of the prompt.", param: "messages")
        }
        if let m = try body.int("max_tokens", in: 1...Int(Int32.max)) {
            params.maxTokens = m
        } else if kind == .completion || body.raw("max_completion_tokens") == nil {
            params.maxTokens = kind == .completion ? 16 : served.maxModelLen - longest
        }
        if longest + params.maxTokens > served.maxModelLen {
            throw OpenAIError(status: 400, message: "This model's maximum context length is \(served.maxModelLen) tokens. However, you requested \(longest + params.maxTokens) tokens (\(longest) in the prompt, \(params.maxTokens) for the completion). Please reduce the length of the prompt or completion.", param: "max_tokens")
        }
        params.temperature = Float(try body.double("temperature", in: 0...100) ?? 1)
        params.topP = Float(try body.double("top_p", in: 1e-9...1) ?? 1)
        params.topK = try body.int("top_k", in: -1...Int(Int32.max)) ?? 0
        params.minP = Float(try body.double("min_p", in: 0...1) ?? 0)
        params.presencePenalty = Float(try body.double("presence_penalty", in: -2...2) ?? 0)
        params.frequencyPenalty = Float(try body.double("frequency_penalty", in: -2...2) ?? 0)
        params.repetitionPenalty = Float(try body.double("repetition_penalty", in: 1e-9...2) ?? 1)
        if let seed = try body.int("seed", in: Int(Int64.min)...Int(Int64.max)) { params.seed = UInt64(bitPattern: Int64(seed)) }
        params.ignoreEOS = try body.bool("ignore_eos") ?? false
        params.logprobs = logprobs
        if let ids = json["stop_token_ids"], ids != .null {
            guard let list = ids.arrayValue else { throw OpenAIError(status: 400, message: "'stop_token_ids' must be a list of integers", param: "stop_token_ids") }
            for id in list {
                guard case .number(let v) = id, v.rounded() == v, v >= 0, v < Double(served.config.vocabSize) else {
                    throw OpenAIError(status: 400, message: "'stop_token_ids' must hold token ids below \(served.config.vocabSize)", param: "stop_token_ids")
                }
                params.stopTokenIDs.insert(Int(v))
            }
        }
        switch json["stop"] {
        case nil, .null?: break
        case .string(let s)?: stops = [s]
        case .array(let list)?:
            stops = try list.map { item throws(OpenAIError) in
                guard let s = item.stringValue else { throw OpenAIError(status: 400, message: "'stop' must be a string or a list of strings", param: "stop") }
                return s
            }
        default: throw OpenAIError(status: 400, message: "'stop' must be a string or a list of strings", param: "stop")
        }
        n = try body.int("n", in: 1...16) ?? 1
        stream = try body.bool("stream") ?? false
        tokensAsIDs = try body.bool("return_tokens_as_token_ids") ?? false
        if case .object? = json["stream_options"] {
            includeUsage = try Fields(json["stream_options"]!).bool("include_usage") ?? false
        }
    }

    /// `prompt`: a string, a list of token ids, or a list of either.
    private static func prompts(_ value: JSONValue?, served: ServedModel, addSpecial: Bool) throws(OpenAIError) -> [[Int]] {
        let vocab = served.config.vocabSize
        func ids(_ list: [JSONValue]) throws(OpenAIError) -> [Int] {
            try list.map { v throws(OpenAIError) in
                guard case .number(let x) = v, x.rounded() == x, x >= 0, x < Double(vocab) else {
                    throw OpenAIError(status: 400, message: "token ids in 'prompt' must be integers in 0..<\(vocab)", param: "prompt")
                }
                return Int(x)
            }
        }
        func encode(_ s: String) -> [Int] { served.tokenizer.encode(s, parseSpecial: true, addSpecial: addSpecial) }
        let result: [[Int]]
        switch value {
        case .string(let s)?:
            result = [encode(s)]
        case .array(let list)? where !list.isEmpty:
            if list.allSatisfy({ if case .number = $0 { return true } else { return false } }) {
                result = [try ids(list)]
            } else {
                result = try list.map { item throws(OpenAIError) in
                    switch item {
                    case .string(let s): return encode(s)
                    case .array(let inner): return try ids(inner)
                    default: throw OpenAIError(status: 400, message: "'prompt' must be a string, a list of token ids, or a list of either", param: "prompt")
                    }
                }
            }
        default:
            throw OpenAIError(status: 400, message: "'prompt' must be a string, a list of token ids, or a list of either", param: "prompt")
        }
        guard result.allSatisfy({ !$0.isEmpty }) else { throw OpenAIError(status: 400, message: "'prompt' must not be empty", param: "prompt") }
        guard result.count <= 64 else { throw OpenAIError(status: 400, message: "at most 64 prompts per request", param: "prompt") }
        return result
    }
}

/// Typed access to a JSON object's fields; a present field of the wrong type or range is a 400 naming it.
struct Fields {
    let json: JSONValue
    init(_ json: JSONValue) { self.json = json }

    func raw(_ key: String) -> JSONValue? {
        guard let v = json[key], v != .null else { return nil }
        return v
    }

    func string(_ key: String) throws(OpenAIError) -> String? {
        guard let v = raw(key) else { return nil }
        guard let s = v.stringValue else { throw OpenAIError(status: 400, message: "'\(key)' must be a string", param: key) }
        return s
    }

    func bool(_ key: String) throws(OpenAIError) -> Bool? {
        guard let v = raw(key) else { return nil }
        guard let b = v.boolValue else { throw OpenAIError(status: 400, message: "'\(key)' must be a boolean", param: key) }
        return b
    }

    func double(_ key: String, in range: ClosedRange<Double>) throws(OpenAIError) -> Double? {
        guard let v = raw(key) else { return nil }
        guard case .number(let x) = v, x.isFinite else { throw OpenAIError(status: 400, message: "'\(key)' must be a number", param: key) }
        guard range.contains(x) else {
            throw OpenAIError(status: 400, message: "'\(key)' must be in [\(range.lowerBound), \(range.upperBound)], got \(x)", param: key)
        }
        return x
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws(OpenAIError) -> Int? {
        guard let v = raw(key) else { return nil }
        guard case .number(let x) = v, x.isFinite, x.rounded() == x, abs(x) < 9.2e18 else {
            throw OpenAIError(status: 400, message: "'\(key)' must be an integer", param: key)
        }
        guard range.contains(Int(x)) else {
            throw OpenAIError(status: 400, message: "'\(key)' must be in [\(range.lowerBound), \(range.upperBound)], got \(Int(x))", param: key)
        }
        return Int(x)
    }
}
