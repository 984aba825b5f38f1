/// What the API layer hands the engine: token ids, sampling, and KV transfer hand-offs.
public struct EngineRequest: Sendable {
    public var id: String
    public var prompt: [Int]
    public var params: SamplingParams
    /// KV fetched from outside (the KV store) for positions `external.range` of the prompt.
    public var external: ExternalKV?
    /// Export the prompt's KV once it is computed (a `kv_producer` stores it).
    public var exportPromptKV: Bool

    public init(id: String, prompt: [Int], params: SamplingParams, external: ExternalKV? = nil, exportPromptKV: Bool = false) {
        self.id = id
        self.prompt = prompt
        self.params = params
        self.external = external
        self.exportPromptKV = exportPromptKV
    }
}

/// KV for token positions `range`, laid out [2][layers][range.count][kvDim] fp32 (K then V).
public struct ExternalKV: Sendable {
    public var range: Range<Int>
    public var data: [Float]

    public init(range: Range<Int>, data: [Float]) {
        self.range = range
        self.data = data
    }
}

public enum FinishReason: String, Sendable {
    case stop, length, abort
}

/// Token accounting of one request: how its prompt was obtained.
public struct EngineUsage: Sendable, Equatable {
    public var promptTokens = 0
    public var completionTokens = 0
    /// Prompt tokens found in local prefix-cache blocks.
    public var localCachedTokens = 0
    /// Prompt tokens loaded from external KV (the KV store).
    public var externalTokens = 0
    /// Prompt tokens run through the model (at least one: the last prompt token).
    public var computedPromptTokens: Int { promptTokens - localCachedTokens - externalTokens }

    public init() {}
}

public enum EngineEvent: Sendable {
    case token(SampledToken)
    /// The prompt's KV, [2][layers][prompt.count][kvDim], when the request asked for it; before `finished`.
    case promptKV(ExternalKV)
    case finished(FinishReason, EngineUsage)
}

public enum EngineError: Error, Sendable, Equatable {
    case overloaded(waiting: Int)
    case promptTooLong(tokens: Int, limit: Int)
    case stopped
}
