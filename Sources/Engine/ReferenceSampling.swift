import Foundation
import Models

// References for checking draws made elsewhere (a device's `RowOutput.draw`): the host sampler at a given uniform,
// and the draw's definition computed exactly.

/// The host sampler's draw at a given uniform, for checking a device's draws against it (`swiftwise gpu-check`).
public struct ReferenceSampler {
    private var sampler = Sampler()

    public init() {}

    /// `row` after `params`' penalties over `prompt` and `output`, as the host sampler applies them.
    public mutating func penalized(_ row: ArraySlice<Float>, params: SamplingParams, prompt: [Int], output: [Int]) -> [Float] {
        var values = Array(row)
        values.withUnsafeMutableBufferPointer { sampler.applyPenalties($0, params: params, prompt: prompt, output: output) }
        return values
    }

    /// The log-probabilities the host sampler reports for `token` and the `top` most likely tokens of `row` under
    /// `params` (penalties over `prompt` and `output`, then the temperature's scaling when sampled).
    public mutating func logprobs(_ row: ArraySlice<Float>, params: SamplingParams, prompt: [Int], output: [Int], token: Int,
                                  top: Int) -> DrawnLogprobs {
        var values = penalized(row, params: params, prompt: prompt, output: output)
        return values.withUnsafeMutableBufferPointer { v in
            if !params.isGreedy { Sampler.scale(v, params: params) }
            let (logprob, top) = Sampler.logprobs(v, token: token, top: top)
            return DrawnLogprobs(logprob: logprob, top: top)
        }
    }

    /// The token drawn from `row` (a copy is scaled) with `params` (no penalties) at `uniform` in [0, 1).
    public mutating func draw(_ row: ArraySlice<Float>, params: SamplingParams, uniform: Float) -> Int {
        var values = Array(row)
        return values.withUnsafeMutableBufferPointer { sampler.draw($0, params: params, uniform: uniform) }
    }
}

/// The draw the sampler defines, computed plainly (the oracle for a device's draws, `swiftwise gpu-check`): the
/// logits scaled in Float (as host and device scale them), weights exp(s − max) in Double, candidates sorted (larger
/// value first, equal values by id, NaN last), top-k, min-p and top-p cut from that order, and the walk to
/// uniform · mass in Double: from the most likely down when top-k or top-p truncated, in id order otherwise.
public struct ExactDraw {
    /// The kept candidates in walk order, with their cumulative weights.
    private var walk: [Int] = [], cumulative: [Double] = []
    /// The token when no finite largest value exists (no distribution to draw from).
    private var fallback: Int?

    /// The draw `params` (temperature, top-k, min-p, top-p) make from `row`.
    public init(_ row: ArraySlice<Float>, params: SamplingParams) {
        let draw = DeviceDraw(params, uniform: 0)
        let (topK, topP, minP) = (draw.topK, draw.topP, draw.minP)
        let s = row.map { $0 * draw.inverseTemperature }
        let largest = s.lazy.filter { !$0.isNaN }.max() ?? .nan
        guard largest.isFinite else {
            fallback = s.firstIndex { $0 == largest || (largest.isNaN && $0.isNaN) } ?? 0
            return
        }
        let weight = s.map { $0.isNaN ? 0 : exp(Double($0) - Double(largest)) }
        var kept = s.indices.sorted { a, b in
            if s[a].isNaN || s[b].isNaN { return !s[a].isNaN || (s[b].isNaN && a < b) }
            return s[a] > s[b] || (s[a] == s[b] && a < b)
        }
        var truncated = false
        if topK > 0 && topK < s.count {
            kept = Array(kept.prefix(topK))
            truncated = true
        }
        if minP > 0 { kept = kept.filter { weight[$0] >= Double(minP) } }
        if topP < 1 {
            let mass = kept.reduce(0) { $0 + weight[$1] }
            var sum = 0.0, end = kept.count
            for (n, i) in kept.enumerated() {
                sum += weight[i]
                if sum >= Double(topP) * mass {
                    end = n + 1
                    break
                }
            }
            kept = Array(kept.prefix(end))
            truncated = true
        }
        walk = truncated ? kept : kept.sorted()
        var sum = 0.0
        cumulative = walk.map { sum += weight[$0]; return sum }
    }

    /// The token at `uniform` in [0, 1).
    public func token(at uniform: Float) -> Int {
        if let fallback { return fallback }
        let target = Double(uniform) * cumulative.last!
        var lo = 0, hi = cumulative.count - 1  // the first whose cumulative weight exceeds the target
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > target { hi = mid } else { lo = mid + 1 }
        }
        return walk[lo]
    }
}
