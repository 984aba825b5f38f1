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
    /// Nothing that needs the logits on the host: a device can draw the token (`RowOutput.draw`), penalties
    /// included, and log-probabilities where it reports them (`logprobsOnDevice`: at most
    /// `DeviceDraw.maxTopLogprobs` of them).
    public func drawSuffices(logprobsOnDevice: Bool) -> Bool {
        guard let n = logprobs else { return true }
        return logprobsOnDevice && n <= DeviceDraw.maxTopLogprobs
    }
    /// Whether any penalty changes the logits.
    public var hasPenalties: Bool { repetitionPenalty != 1 || presencePenalty != 0 || frequencyPenalty != 0 }
}

extension DeviceDraw {
    /// The draw these parameters ask for, at `uniform`: the logits scaled by 1/temperature, as the host sampler scales
    /// them (exactly 1 at temperature 1).
    public init(_ params: SamplingParams, uniform: Float) {
        self.init(inverseTemperature: 1 / params.temperature, topK: params.topK, topP: params.topP, minP: params.minP, uniform: uniform)
    }

    /// The draw of a request's next token: its penalties over its prompt and output so far, then its sampling; a
    /// greedy request's is top-k 1 of the penalized logits at temperature 1 (what the host's argmax picks: the first
    /// of the largest, NaN below everything), and takes no uniform.
    public init(_ params: SamplingParams, prompt: [Int], output: [Int], uniform: () -> Float) {
        if params.isGreedy {
            self.init(inverseTemperature: 1, topK: 1, topP: 1, minP: 0, uniform: 0)
        } else {
            self.init(params, uniform: uniform())
        }
        logprobs = params.logprobs
        if params.hasPenalties {
            penalties = Penalties(repetition: params.repetitionPenalty, frequency: params.frequencyPenalty,
                                        presence: params.presencePenalty, prompt: prompt, output: output)
        }
    }
}
