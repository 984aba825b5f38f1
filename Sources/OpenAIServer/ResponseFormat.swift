import Engine
import OpenAIAPI
import Tokenizers

/// The OpenAI response shapes: chat completion (+ chunk) and text completion (+ chunk), with usage and logprobs.
struct ResponseFormat: Sendable {
    let id: String
    let created: Int
    let model: String
    let isChat: Bool
    let tokenizer: BPETokenizer
    let promptTokens: Int
    var tokensAsIDs = false

    private var object: String { isChat ? "chat.completion" : "text_completion" }

    private func envelope(_ object: String, _ choices: [JSONValue]) -> [String: JSONValue] {
        ["id": .string(id), "object": .string(object), "created": .number(Double(created)), "model": .string(model),
         "choices": .array(choices)]
    }

    /// The first chunk of a chat choice: the assistant role, no content yet.
    func chunk(index: Int, role: Bool) -> JSONValue {
        let choice: JSONValue = .object(["index": .number(Double(index)),
                                         "delta": .object(["role": .string("assistant"), "content": .string("")]),
                                         "logprobs": .null, "finish_reason": .null])
        return .object(envelope("chat.completion.chunk", [choice]))
    }

    func chunk(_ d: ChoiceDelta) -> JSONValue {
        var choice: [String: JSONValue] = ["index": .number(Double(d.index)),
                                           "finish_reason": d.finishReason.map { .string($0) } ?? .null,
                                           "logprobs": d.tokens.first?.logprob == nil ? .null : logprobs(d.tokens)]
        if isChat {
            choice["delta"] = d.text.isEmpty && d.finishReason != nil ? .object([:]) : .object(["content": .string(d.text)])
            return .object(envelope("chat.completion.chunk", [.object(choice)]))
        }
        choice["text"] = .string(d.text)
        return .object(envelope("text_completion", [.object(choice)]))
    }

    func usageChunk(_ u: UsageTotals) -> JSONValue {
        var body = envelope(isChat ? "chat.completion.chunk" : "text_completion", [])
        body["usage"] = usage(completion: u.completion, cached: u.cached)
        return .object(body)
    }

    func final(_ choices: [ChoiceAccumulator]) -> JSONValue {
        var completion = 0, cached = 0
        let rendered: [JSONValue] = choices.enumerated().map { i, c in
            completion += c.usage?.completionTokens ?? 0
            cached += (c.usage?.localCachedTokens ?? 0) + (c.usage?.externalTokens ?? 0)
            var choice: [String: JSONValue] = ["index": .number(Double(i)),
                                               "finish_reason": c.finishReason.map { .string($0) } ?? .null,
                                               "logprobs": c.tokens.first?.logprob == nil ? .null : logprobs(c.tokens)]
            if isChat {
                choice["message"] = .object(["role": .string("assistant"), "content": .string(c.text), "tool_calls": .array([])])
            } else {
                choice["text"] = .string(c.text)
            }
            return .object(choice)
        }
        var body = envelope(object, rendered)
        body["usage"] = usage(completion: completion, cached: cached)
        return .object(body)
    }

    private func usage(completion: Int, cached: Int) -> JSONValue {
        .object(["prompt_tokens": .number(Double(promptTokens)), "completion_tokens": .number(Double(completion)),
                 "total_tokens": .number(Double(promptTokens + completion)),
                 "prompt_tokens_details": .object(["cached_tokens": .number(Double(cached))])])
    }

    private func logprobs(_ tokens: [SampledToken]) -> JSONValue {
        func text(_ id: Int) -> String { tokensAsIDs ? "token_id:\(id)" : tokenizer.decode([id]) }
        func bytes(_ id: Int) -> JSONValue { .array(tokenizer.bytes(of: [id]).map { .number(Double($0)) }) }
        if isChat {
            return .object(["content": .array(tokens.map { t in
                .object(["token": .string(text(t.token)), "logprob": .number(Double(t.logprob ?? 0)), "bytes": bytes(t.token),
                         "top_logprobs": .array(t.top.map { .object(["token": .string(text($0.token)), "logprob": .number(Double($0.logprob)),
                                                                      "bytes": bytes($0.token)]) })])
            })])
        }
        var top: [JSONValue] = []
        for t in tokens {
            var entry: [String: JSONValue] = [:]
            for alt in t.top { entry[text(alt.token)] = .number(Double(alt.logprob)) }
            top.append(.object(entry))
        }
        return .object(["tokens": .array(tokens.map { .string(text($0.token)) }),
                        "token_logprobs": .array(tokens.map { .number(Double($0.logprob ?? 0)) }),
                        "top_logprobs": .array(top), "text_offset": .array([])])
    }
}
