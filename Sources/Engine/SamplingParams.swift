import Models

/// How the next token is chosen and when generation stops; validated by the API layer before it gets here.
public struct SamplingParams: Sendable, Equatable {
    public var maxTokens: Int = 16
    /// 0 means greedy (argmax, ties to the lowest id).
    public var temperature: Float = 1
    public var topP: Float = 1
    /// 0 or −1: off.
    public var topK: Int = 0
    public var minP: Float = 0
    public var seed: UInt64?
    public var presencePenalty: Float = 0
    public var frequencyPenalty: Float = 0
    public var repetitionPenalty: Float = 1
    public var stopTokenIDs: Set<Int> = []
    public var ignoreEOS = false
    /// Log-probabilities of this many top tokens per step (nil: none; 0: the chosen token's only).
    public var logprobs: Int?

    public init() {}

    public var isGreedy: Bool { temperature <= 1e-5 || topK == 1 }
    /// Greedy with nothing that needs the logits themselves (penalties, log-probabilities): the backend's argmax is
    /// the token, and a GPU sends one int a row instead of the vocabulary.
    public var argmaxSuffices: Bool {
        isGreedy && logprobs == nil && repetitionPenalty == 1 && presencePenalty == 0 && frequencyPenalty == 0
    }
    /// Sampled with nothing that needs the logits on the host: temperature, top-k, min-p and top-p only, which a
    /// device can draw (`RowOutput.draw`).
    public var drawSuffices: Bool {
        !isGreedy && logprobs == nil && repetitionPenalty == 1 && presencePenalty == 0 && frequencyPenalty == 0
    }
}

extension DeviceDraw {
    /// The draw these parameters ask for, at `uniform`: the logits scaled by 1/temperature, as the host sampler scales
    /// them (exactly 1 at temperature 1).
    public init(_ params: SamplingParams, uniform: Float) {
        self.init(inverseTemperature: 1 / params.temperature, topK: params.topK, topP: params.topP, minP: params.minP, uniform: uniform)
    }
}
