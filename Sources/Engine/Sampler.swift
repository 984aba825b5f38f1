#if canImport(Glibc)
import Glibc
#endif
import Models

/// A seeded random source (xoshiro256**), one per request so a `seed` reproduces the request whatever else runs.
struct RequestRandom {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    /// The state is four SplitMix64 outputs of the seed (the seeding xoshiro's authors recommend).
    init(seed: UInt64) {
        let step: UInt64 = 0x9E37_79B9_7F4A_7C15
        s = (PrefixHash.mix(seed), PrefixHash.mix(seed &+ step), PrefixHash.mix(seed &+ 2 &* step), PrefixHash.mix(seed &+ 3 &* step))
    }

    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

/// The chosen token and, when asked for, log-probabilities (of the distribution after penalties and temperature,
/// before top-k/top-p truncation, as vLLM reports them by default).
public struct SampledToken: Sendable {
    public var token: Int
    public var logprob: Float?
    public var top: [(token: Int, logprob: Float)]
}

enum Sampler {
    /// Picks the next token from one row of logits. `history` is prompt + output (for penalties).
    static func sample(_ row: UnsafeMutableBufferPointer<Float>, params: SamplingParams, prompt: [Int], output: [Int],
                       random: inout RequestRandom) -> SampledToken {
        applyPenalties(row, params: params, prompt: prompt, output: output)
        let greedy = params.isGreedy
        if !greedy, params.temperature != 1 {
            let inv = 1 / params.temperature
            for i in row.indices { row[i] *= inv }
        }
        var token: Int
        if greedy {
            token = Logits.argmax(row)
        } else {
            token = draw(row, params: params, random: &random)
        }
        var result = SampledToken(token: token, logprob: nil, top: [])
        if let n = params.logprobs {
            let logZ = logSumExp(row)
            result.logprob = row[token] - logZ
            if n > 0 {
                let best = topIndices(row, count: n)
                result.top = best.map { ($0, row[$0] - logZ) }
            }
        }
        return result
    }

    private static func applyPenalties(_ row: UnsafeMutableBufferPointer<Float>, params: SamplingParams, prompt: [Int], output: [Int]) {
        if params.repetitionPenalty != 1 {
            // As vLLM: every token seen in prompt or output; positive logits divided, negative multiplied.
            var seen = Set(prompt)
            seen.formUnion(output)
            for t in seen where t >= 0 && t < row.count {
                row[t] = row[t] > 0 ? row[t] / params.repetitionPenalty : row[t] * params.repetitionPenalty
            }
        }
        if params.presencePenalty != 0 || params.frequencyPenalty != 0 {
            var counts: [Int: Int] = [:]
            for t in output { counts[t, default: 0] += 1 }
            for (t, n) in counts where t >= 0 && t < row.count {
                row[t] -= params.frequencyPenalty * Float(n) + params.presencePenalty
            }
        }
    }

    /// Softmax sampling after top-k, min-p and top-p truncation.
    private static func draw(_ row: UnsafeMutableBufferPointer<Float>, params: SamplingParams, random: inout RequestRandom) -> Int {
        let k = params.topK > 0 ? min(params.topK, row.count) : row.count
        // Candidates sorted by logit, descending (ties by id, so the order is deterministic).
        var candidates: [Int]
        if k < row.count {
            candidates = topIndices(row, count: k)
        } else {
            candidates = Array(0..<row.count)
            candidates.sort { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }
        }
        let maxLogit = row[candidates[0]]
        var probs = candidates.map { expf(row[$0] - maxLogit) }
        var total = probs.reduce(0, +)
        if params.minP > 0 {
            let floor = params.minP * probs[0]
            let keep = probs.firstIndex { $0 < floor } ?? probs.count
            probs.removeSubrange(keep...)
            candidates.removeSubrange(keep...)
            total = probs.reduce(0, +)
        }
        if params.topP < 1 {
            var cumulative: Float = 0
            var keep = probs.count
            for (i, p) in probs.enumerated() {
                cumulative += p / total
                if cumulative >= params.topP {
                    keep = i + 1
                    break
                }
            }
            probs.removeSubrange(keep...)
            candidates.removeSubrange(keep...)
            total = probs.reduce(0, +)
        }
        let target = random.uniform() * total
        var cumulative: Float = 0
        for (i, p) in probs.enumerated() {
            cumulative += p
            if target < cumulative { return candidates[i] }
        }
        return candidates[candidates.count - 1]
    }

    /// Indices of the `count` largest values, descending (ties by id).
    static func topIndices(_ row: UnsafeMutableBufferPointer<Float>, count: Int) -> [Int] {
        var best: [Int] = []
        best.reserveCapacity(count + 1)
        for i in row.indices {
            if best.count == count, let last = best.last, row[i] <= row[last] { continue }
            var j = best.count
            while j > 0, row[best[j - 1]] < row[i] { j -= 1 }
            best.insert(i, at: j)
            if best.count > count { best.removeLast() }
        }
        return best
    }

    static func logSumExp(_ row: UnsafeMutableBufferPointer<Float>) -> Float {
        var m = -Float.infinity
        for v in row { m = max(m, v) }
        var s: Float = 0
        for v in row { s += expf(v - m) }
        return m + logf(s)
    }
}
