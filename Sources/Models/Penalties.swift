/// vLLM's penalties, before temperature: every distinct token of `prompt` and
/// `output` has its logit divided by `repetition` when positive, multiplied when not; then each token of `output`
/// loses `frequency` × its count there + `presence`. The arrays are the request's own (no copy is made).
public struct Penalties: Sendable, Equatable {
    public var repetition: Float
    public var frequency: Float
    public var presence: Float
    public var prompt: [Int]
    public var output: [Int]

    public init(repetition: Float, frequency: Float, presence: Float, prompt: [Int], output: [Int]) {
        self.repetition = repetition
        self.frequency = frequency
        self.presence = presence
        self.prompt = prompt
        self.output = output
    }

    /// One token's penalized logit, with the host sampler's arithmetic (Float, in its order): `count` is the token's
    /// count in the output.
    @inlinable
    public func apply(_ logit: Float, count: Int) -> Float {
        var v = logit
        if repetition != 1 { v = v > 0 ? v / repetition : v * repetition }
        if count > 0 && (frequency != 0 || presence != 0) { v -= frequency * Float(count) + presence }
        return v
    }
}

/// One pair (token, its count in the output) per distinct token that a draw's penalties touch: the output's, and the
/// prompt's where the repetition penalty applies (the others change nothing there), out-of-vocabulary ids skipped.
/// Scratch by token id finds them without a set per draw. The host sampler applies its penalties through the same
/// pairs (`Penalties.apply` on each), so host and device penalize the same tokens with the same arithmetic.
public struct PenaltyPairs: Sendable {
    /// `seen[t] == mark` once t has its pair in the current draw's list; counts: its count in the output.
    private var seen: [UInt32], counts: [Int32], mark: UInt32 = 0

    /// The token ids it covers: penalties on ids outside are skipped.
    public var vocab: Int { seen.count }

    public init(vocab: Int) {
        seen = [UInt32](repeating: 0, count: vocab)
        counts = [Int32](repeating: 0, count: vocab)
    }

    /// Writes the pairs as Int32 (token, count) from pair `start` of `pairs` on; returns the end.
    public mutating func write(_ penalties: Penalties, into pairs: UnsafeMutablePointer<Int32>, at start: Int) -> Int {
        mark &+= 1
        if mark == 0 {  // wrapped: old marks could equal the new one
            for i in seen.indices { seen[i] = 0 }
            mark = 1
        }
        let vocab = seen.count, mark = mark
        var end = start
        seen.withUnsafeMutableBufferPointer { seen in
            counts.withUnsafeMutableBufferPointer { counts in
                func add(_ tokens: [Int]) {
                    for t in tokens where t >= 0 && t < vocab && seen[t] != mark {
                        seen[t] = mark
                        pairs[2 * end] = Int32(t)
                        pairs[2 * end + 1] = counts[t]
                        end += 1
                    }
                }
                for t in penalties.output where t >= 0 && t < vocab { counts[t] += 1 }
                if penalties.repetition != 1 { add(penalties.prompt) }
                add(penalties.output)
                for t in penalties.output where t >= 0 && t < vocab { counts[t] = 0 }
            }
        }
        return end
    }
}
