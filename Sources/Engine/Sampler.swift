#if canImport(Glibc)
import Glibc
#endif
import Models
import TensorKit

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

/// Picks the next token from a row of logits: penalties, temperature, then top-k, min-p and top-p truncation and a
/// softmax draw. Its scratch (a weight and a candidate id per vocabulary entry) lives as long as the sampler and is
/// reused for every row, so a step allocates nothing per token; the engine keeps one per sampling thread.
///
/// Nothing sorts the vocabulary: the softmax weights are computed once, top-k keeps a heap of k ids, and top-p sorts
/// only the tokens whose weights lie in the few highest power-of-two bands that hold the nucleus (the sorted prefix
/// of every candidate whose cumulative probability first reaches top_p). Truncated candidates are walked from the
/// most likely down; untruncated sampling walks the vocabulary in id order (the same distribution).
struct Sampler {
    /// exp(logit − max logit) by token id (NaN logits weigh 0): every token's, or after top-k the candidates'.
    private var weights: [Float] = []
    /// Candidate ids (explicit lists: the top-k heap, filtered or banded sets) in the order they are walked.
    private var ids: [Int32] = []
    /// Sums of blocks of weights (`SoftmaxWeights.blockSums`), for draws over every token.
    private var blockSums: [Float] = []
    /// The penalties' scratch: the distinct tokens they touch, and their (token, count) pairs.
    private var pairs = PenaltyPairs(vocab: 0), pairBuffer: [Int32] = []
    /// The nucleus' bands as sort keys, and as much room again, for `sortByRank`.
    private var sortKeys: [UInt64] = []

    /// Picks the next token from one row of logits (modified in place). `prompt` and `output` feed the penalties.
    mutating func sample(_ row: UnsafeMutableBufferPointer<Float>, params: SamplingParams, prompt: [Int], output: [Int],
                         random: inout RequestRandom) -> SampledToken {
        applyPenalties(row, params: params, prompt: prompt, output: output)
        let greedy = params.isGreedy
        let token = greedy ? Logits.argmax(row) : draw(row, params: params) { random.uniform() }
        var result = SampledToken(token: token, logprob: nil, top: [])
        if let n = params.logprobs { (result.logprob, result.top) = Self.logprobs(row, token: token, top: n) }
        return result
    }

    /// The log-probabilities reported for `token` and the `top` most likely tokens of `row` (as the draw left it:
    /// penalized, and scaled by 1/temperature when sampled).
    static func logprobs(_ row: UnsafeMutableBufferPointer<Float>, token: Int, top: Int) -> (Float, [(token: Int, logprob: Float)]) {
        let logZ = logSumExp(row)
        return (row[token] - logZ, top > 0 ? topLogprobs(row, count: top, logZ: logZ) : [])
    }

    /// `row` scaled in place by 1/temperature, as a draw scales it (unchanged at temperature 1).
    static func scale(_ row: UnsafeMutableBufferPointer<Float>, params: SamplingParams) {
        guard params.temperature != 1 else { return }
        let inverse = 1 / params.temperature
        for i in row.indices { row[i] *= inverse }
    }

    /// The token a draw (temperature, truncation, softmax) picks from `row` (scaled in place) at `uniform`: what a
    /// device's draw (`RowOutput.draw`) is checked against.
    mutating func draw(_ row: UnsafeMutableBufferPointer<Float>, params: SamplingParams, uniform: Float) -> Int {
        draw(row, params: params) { uniform }
    }

    /// The tokens a draw chooses among after truncation, in the order the draw walks them (for tests).
    mutating func candidates(_ row: UnsafeMutableBufferPointer<Float>, params: SamplingParams) -> [Int] {
        guard let kept = truncate(row, params: params) else { return [Logits.argmax(row)] }
        return kept.explicit ? ids[0..<kept.count].map { Int($0) } : Array(0..<row.count)
    }

    /// vLLM's penalties, in place: the repetition penalty on every token of prompt or output (positive logits divided,
    /// negative multiplied), then the frequency penalty times each output token's count and the presence penalty once
    /// per output token. One (token, count) pair per distinct token touched (`PenaltyPairs`, the pairs a device draw
    /// gets), each logit changed by `Penalties.apply`: a long prompt costs a pass over it, not a set built per token.
    mutating func applyPenalties(_ row: UnsafeMutableBufferPointer<Float>, params: SamplingParams, prompt: [Int], output: [Int]) {
        guard params.hasPenalties else { return }
        let penalties = Penalties(repetition: params.repetitionPenalty, frequency: params.frequencyPenalty,
                                  presence: params.presencePenalty, prompt: prompt, output: output)
        if pairs.vocab != row.count { pairs = PenaltyPairs(vocab: row.count) }
        let most = 2 * (prompt.count + output.count)
        if pairBuffer.count < most { pairBuffer = [Int32](repeating: 0, count: max(most, 2 * pairBuffer.count)) }
        pairBuffer.withUnsafeMutableBufferPointer { buffer in
            let end = pairs.write(penalties, into: buffer.baseAddress!, at: 0)
            for k in 0..<end {
                let t = Int(buffer[2 * k])
                row[t] = penalties.apply(row[t], count: Int(buffer[2 * k + 1]))
            }
        }
    }

    /// The candidates left after truncation: the first `count` of `ids` when explicit, else every token id in order;
    /// `sorted` when they run from the most likely down.
    private struct Kept {
        var count: Int
        var explicit: Bool
        var sorted: Bool
    }

    /// The logit's bits in an order-preserving form: larger value, larger integer; NaN 0, below everything; -0 as
    /// +0, which compare equal.
    @inline(__always)
    private static func orderedBits(_ value: Float) -> UInt64 {
        if value.isNaN { return 0 }
        let u = value == 0 ? 0 : value.bitPattern
        return UInt64(u & 0x8000_0000 != 0 ? ~u : u | 0x8000_0000)
    }

    /// Sorts `ids` most likely first (the order `below` defines): a least-significant-digit radix sort, 11 bits a
    /// pass, of keys that order as `below` ranks, smallest first (the logit's ordered bits complemented, above the
    /// id in as many bits as the largest id needs), in `keys`, with `spare` as much room again: five passes for a
    /// 128k vocabulary. Digits that every key shares (most of a logit's sign and exponent) move nothing and are
    /// skipped. On a flat 128k row whose nucleus keeps most tokens this is the sampler's whole cost: Swift's
    /// comparison sort took about 20 ms there.
    static func sortByRank(_ ids: UnsafeMutableBufferPointer<Int32>, _ row: UnsafeMutableBufferPointer<Float>,
                           keys: UnsafeMutableBufferPointer<UInt64>, spare: UnsafeMutableBufferPointer<UInt64>) {
        let n = ids.count
        guard n > 1 else { return }
        var source = keys.baseAddress!, destination = spare.baseAddress!
        var largestID: Int32 = 0
        for i in 0..<n { largestID = max(largestID, ids[i]) }
        let idBits = UInt64(32 - UInt32(bitPattern: largestID).leadingZeroBitCount), idMask: UInt64 = (1 << idBits) - 1
        for i in 0..<n { source[i] = (0xFFFF_FFFF - orderedBits(row[Int(ids[i])])) << idBits | UInt64(ids[i]) }
        let digitBits: UInt64 = 11, digits = 1 << digitBits, digitMask = UInt64(digits - 1)
        var counts = InlineArray<2048, Int>(repeating: 0)  // on the stack
        for shift in stride(from: 0, to: 32 + idBits, by: Int(digitBits)) {
            for d in 0..<digits { counts[d] = 0 }
            for i in 0..<n { counts[Int(truncatingIfNeeded: source[i] >> shift & digitMask)] += 1 }
            if counts[Int(truncatingIfNeeded: source[0] >> shift & digitMask)] == n { continue }
            var offset = 0
            for d in 0..<digits {
                let c = counts[d]
                counts[d] = offset
                offset += c
            }
            for i in 0..<n {
                let digit = Int(truncatingIfNeeded: source[i] >> shift & digitMask)
                destination[counts[digit]] = source[i]
                counts[digit] += 1
            }
            swap(&source, &destination)
        }
        for i in 0..<n { ids[i] = Int32(truncatingIfNeeded: source[i] & idMask) }
    }

    /// `a` ranks below `b`: a lower logit, or an equal one at a higher id; NaN ranks below everything.
    static func below(_ row: UnsafeMutableBufferPointer<Float>, _ a: Int32, _ b: Int32) -> Bool {
        let x = row[Int(a)], y = row[Int(b)]
        if x.isNaN || y.isNaN { return x.isNaN && (!y.isNaN || a > b) }
        return x < y || (x == y && a > b)
    }

    /// A softmax draw among the truncated candidates of `row`, scaled in place by 1/temperature first (so the
    /// log-probabilities `sample` reports are those of the scaled row, as before).
    private mutating func draw(_ row: UnsafeMutableBufferPointer<Float>, params: SamplingParams, uniform: () -> Float) -> Int {
        Self.scale(row, params: params)
        // No finite largest logit (all -inf or NaN, or a +inf): no distribution to draw from; the argmax decides.
        guard let kept = truncate(row, params: params) else { return Logits.argmax(row) }
        if !kept.explicit {
            // Every token: block sums, then a walk over blocks (a few thousand additions instead of a vocabulary's).
            let blocks = (kept.count + SoftmaxWeights.blockLength - 1) / SoftmaxWeights.blockLength
            if blockSums.count < blocks { blockSums = [Float](repeating: 0, count: blocks) }
            return weights.withUnsafeBufferPointer { w in
                blockSums.withUnsafeMutableBufferPointer { sums in
                    SoftmaxWeights.blockSums(w.baseAddress!, count: kept.count, into: sums.baseAddress!)
                    var total: Float = 0
                    for b in 0..<blocks { total += sums[b] }
                    return SoftmaxWeights.index(w.baseAddress!, count: kept.count, sums: sums.baseAddress!, target: uniform() * total)
                }
            }
        }
        return weights.withUnsafeBufferPointer { w in
            ids.withUnsafeBufferPointer { ids in
                var total: Float = 0
                for i in 0..<kept.count { total += w[Int(ids[i])] }
                let target = uniform() * total
                var cumulative: Float = 0
                for i in 0..<kept.count {
                    cumulative += w[Int(ids[i])]
                    if target < cumulative { return Int(ids[i]) }
                }
                // Rounding left the target at the total: the last candidate with any weight.
                return Int(ids[(0..<kept.count).last { w[Int(ids[$0])] > 0 } ?? kept.count - 1])
            }
        }
    }

    /// Applies top-k, then min-p, then top-p, computing the weights of the candidates (every token's but after
    /// top-k). nil when the row has no finite largest logit.
    private mutating func truncate(_ row: UnsafeMutableBufferPointer<Float>, params: SamplingParams) -> Kept? {
        let n = row.count
        let largest = SoftmaxWeights.largest(UnsafeBufferPointer(row))
        guard largest.isFinite else { return nil }
        if weights.count < n {
            weights = [Float](repeating: 0, count: n)
            ids = [Int32](repeating: 0, count: n)
            sortKeys = [UInt64](repeating: 0, count: 2 * n)
        }
        var kept: Kept
        if params.topK > 0, params.topK < n {
            kept = topK(row, k: params.topK)
            weights.withUnsafeMutableBufferPointer { w in
                for i in 0..<kept.count {
                    let id = Int(ids[i])
                    w[id] = SoftmaxWeights.weight(row[id] - largest)
                }
            }
        } else {
            kept = Kept(count: n, explicit: false, sorted: false)
            weights.withUnsafeMutableBufferPointer { SoftmaxWeights.weights(UnsafeBufferPointer(row), largest: largest, into: $0.baseAddress!) }
        }
        if params.minP > 0 { kept = minP(kept, floor: params.minP) }  // the largest weight is exp(0) = 1
        if params.topP < 1 { kept = topP(row, kept, p: params.topP) }
        return kept
    }

    /// The k candidates with the largest logits (ties to the lower id), most likely first: a heap of k ids whose root
    /// is the least of them, replaced whenever a later id beats it.
    private mutating func topK(_ row: UnsafeMutableBufferPointer<Float>, k: Int) -> Kept {
        ids.withUnsafeMutableBufferPointer { heap in
            func siftDown(_ start: Int) {
                var i = start
                while true {
                    let l = 2 * i + 1, r = l + 1
                    var least = i
                    if l < k, Self.below(row, heap[l], heap[least]) { least = l }
                    if r < k, Self.below(row, heap[r], heap[least]) { least = r }
                    if least == i { return }
                    heap.swapAt(i, least)
                    i = least
                }
            }
            for i in 0..<k { heap[i] = Int32(i) }
            for i in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(i) }
            for i in k..<row.count where Self.below(row, heap[0], Int32(i)) {
                heap[0] = Int32(i)
                siftDown(0)
            }
            var top = UnsafeMutableBufferPointer(rebasing: heap[0..<k])
            top.sort { Self.below(row, $1, $0) }
        }
        return Kept(count: k, explicit: true, sorted: true)
    }

    /// Keeps the candidates whose weight is at least `floor` (relative to the largest), in their order.
    private mutating func minP(_ kept: Kept, floor: Float) -> Kept {
        var count = 0
        weights.withUnsafeBufferPointer { w in
            ids.withUnsafeMutableBufferPointer { ids in
                for i in 0..<kept.count {
                    let id = kept.explicit ? Int(ids[i]) : i
                    if w[id] >= floor {
                        ids[count] = Int32(id)
                        count += 1
                    }
                }
            }
        }
        return Kept(count: count, explicit: true, sorted: kept.sorted)
    }

    /// The nucleus: the most likely candidates, in order, up to the first whose cumulative probability reaches `p`.
    /// Unsorted candidates are grouped into bands by their weight's binary exponent (weight 1 in band 0, [1/2, 1) in
    /// band 1, ...; zero and denormal weights in the last); only the bands that reach `p` between them are sorted.
    /// A band holds whole runs of the sorted order (a larger logit never has a smaller weight), so the sorted bands
    /// are a prefix of the sorted candidates.
    private mutating func topP(_ row: UnsafeMutableBufferPointer<Float>, _ kept: Kept, p: Float) -> Kept {
        let bands = 128
        func band(_ w: Float) -> Int { w >= Float.leastNormalMagnitude ? min(127 - Int(w.exponentBitPattern), bands - 1) : bands - 1 }
        var bandSums = InlineArray<128, Float>(repeating: 0)  // on the stack
        return weights.withUnsafeBufferPointer { w in
            ids.withUnsafeMutableBufferPointer { ids in
                var total: Float = 0
                for i in 0..<kept.count { total += w[kept.explicit ? Int(ids[i]) : i] }
                // The sorted prefix of `ids` up to where the cumulative probability reaches p; nil when it never does.
                func cut(_ count: Int) -> Int? {
                    var cumulative: Float = 0
                    for i in 0..<count {
                        cumulative += w[Int(ids[i])] / total
                        if cumulative >= p { return i + 1 }
                    }
                    return nil
                }
                if kept.sorted { return Kept(count: cut(kept.count) ?? kept.count, explicit: true, sorted: true) }
                for i in 0..<kept.count {
                    let id = kept.explicit ? Int(ids[i]) : i
                    bandSums[band(w[id])] += w[id]
                }
                var last = 0, cumulative: Float = 0
                while last < bands - 1 {
                    cumulative += bandSums[last]
                    if cumulative / total >= p { break }
                    last += 1
                }
                // The candidates of bands 0...last, sorted; one band more while rounding keeps the cut out of reach.
                while true {
                    var count = 0
                    for i in 0..<kept.count {
                        let id = kept.explicit ? ids[i] : Int32(i)
                        guard band(w[Int(id)]) <= last else { continue }
                        if kept.explicit { ids.swapAt(count, i) } else { ids[count] = id }
                        count += 1
                    }
                    sortKeys.withUnsafeMutableBufferPointer { keys in
                        Self.sortByRank(UnsafeMutableBufferPointer(rebasing: ids[0..<count]), row,
                                        keys: UnsafeMutableBufferPointer(rebasing: keys[0..<count]),
                                        spare: UnsafeMutableBufferPointer(rebasing: keys[count..<2 * count]))
                    }
                    if let end = cut(count) { return Kept(count: end, explicit: true, sorted: true) }
                    if count == kept.count { return Kept(count: count, explicit: true, sorted: true) }
                    last += 1
                }
            }
        }
    }

    /// The `count` largest values as (index, value − logZ), descending (ties by id), built in the array returned
    /// (one allocation a row: the result's own).
    static func topLogprobs(_ row: UnsafeMutableBufferPointer<Float>, count: Int, logZ: Float) -> [(token: Int, logprob: Float)] {
        var best: [(token: Int, logprob: Float)] = []
        best.reserveCapacity(count + 1)
        for i in row.indices {
            if best.count == count, let last = best.last, row[i] <= row[last.token] { continue }
            var j = best.count
            while j > 0, row[best[j - 1].token] < row[i] { j -= 1 }
            best.insert((i, row[i]), at: j)
            if best.count > count { best.removeLast() }
        }
        for k in best.indices { best[k].logprob -= logZ }
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
