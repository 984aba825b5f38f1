import Engine
import Foundation
import OpenAIAPI
import Tokenizers

/// What one choice adds to the response at one moment: text, log-probabilities, and at the end its finish reason.
struct ChoiceDelta: Sendable {
    var index: Int
    var text: String = ""
    var tokens: [SampledToken] = []
    var finishReason: String?
    var usage: EngineUsage?
}

/// Runs one choice (one engine request) to the end, turning engine events into text deltas: streaming
/// detokenization, stop strings, and (for a producer) the wait for the prompt's KV to be stored before the end.
struct ChoiceRunner: Sendable {
    let index: Int
    let requestID: String
    let prompt: [Int]
    let request: EngineRequest
    let stops: [String]
    let served: ServedModel
    let engine: EngineCore
    let connector: (any KVConnector)?

    /// Queues the request in the engine (a full engine is a 503 before any response byte is sent).
    func submit() throws(OpenAIError) -> AsyncStream<EngineEvent> {
        do {
            return try engine.submit(request)
        } catch {
            throw Self.apiError(error)
        }
    }

    func run(_ events: AsyncStream<EngineEvent>, _ emit: @Sendable (ChoiceDelta) async throws -> Void) async throws {
        var finished = false
        defer { if !finished { engine.abort(request.id) } }
        var detokenizer = StreamingDetokenizer(tokenizer: served.tokenizer, skipSpecialTokens: true)
        var matcher = StopMatcher(stops: stops)
        var storing: Task<Void, Never>?
        var completionTokens = 0
        for await event in events {
            try Task.checkCancellation()
            switch event {
            case .promptKV(let kv):
                if let connector { storing = Task { await connector.store(prompt: prompt, kv: kv) } }
            case .token(let sampled):
                completionTokens += 1
                let (text, stopped) = matcher.push(detokenizer.append(sampled.token))
                if stopped {
                    engine.abort(request.id)
                    await storing?.value
                    var usage = EngineUsage()
                    usage.promptTokens = prompt.count
                    usage.completionTokens = completionTokens
                    finished = true
                    try await emit(ChoiceDelta(index: index, text: text, tokens: [sampled], finishReason: "stop", usage: usage))
                    return
                }
                if !text.isEmpty || request.params.logprobs != nil {
                    try await emit(ChoiceDelta(index: index, text: text, tokens: [sampled]))
                }
            case .finished(let reason, let usage):
                finished = true
                await storing?.value
                let tail = matcher.push(detokenizer.finish()).text + matcher.flush()
                try await emit(ChoiceDelta(index: index, text: tail, finishReason: reason == .length ? "length" : reason == .stop ? "stop" : "abort",
                                           usage: usage))
                return
            }
        }
        if !finished { throw CancellationError() }
    }

    static func apiError(_ error: EngineError) -> OpenAIError {
        switch error {
        case .overloaded(let waiting):
            return OpenAIError(status: 503, message: "server overloaded: \(waiting) requests in flight; retry later")
        case .promptTooLong(let tokens, let limit):
            return OpenAIError(status: 400, message: "This model's maximum context length is \(limit) tokens. However, your prompt has \(tokens) tokens.")
        case .stopped:
            return OpenAIError(status: 503, message: "server is shutting down")
        }
    }
}
