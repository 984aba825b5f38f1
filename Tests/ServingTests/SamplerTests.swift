import Foundation
import Testing
import TensorKit
@testable import Engine

/// The sampler's truncation against a plain reference that sorts the whole vocabulary, and its draws against the
/// distribution they should follow.
@Suite("Sampler: top-k, min-p, top-p without sorting the vocabulary")
struct SamplerTests {
    /// The kept candidates by the definition: every token sorted by logit (descending, ties to the lower id); top-k
    /// keeps the first k; min-p keeps weights e^(l − max) ≥ min_p (the sampler's `SoftmaxWeights.weight`); top-p keeps the sorted prefix up to the first
    /// token at which the cumulative weight over the total reaches top_p. The total is summed in the order the
    /// candidates are held: most likely first after top-k, by id otherwise.
    static func reference(_ row: [Float], _ params: SamplingParams, order given: [Int]? = nil) -> [Int] {
        let largest = row.max()!
        let w = row.map { SoftmaxWeights.weight($0 - largest) }
        let order = given ?? sortedIDs(row)
        let truncatedK = params.topK > 0 && params.topK < row.count
        var held = truncatedK ? Array(order.prefix(params.topK)) : Array(row.indices)
        if params.minP > 0 { held = held.filter { w[$0] >= params.minP } }
        guard params.topP < 1 else { return held }
        var total: Float = 0
        for id in held { total += w[id] }
        let sorted = truncatedK ? held : order.filter(Set(held).contains)
        var cumulative: Float = 0
        for (i, id) in sorted.enumerated() {
            cumulative += w[id] / total
            if cumulative >= params.topP { return Array(sorted.prefix(i + 1)) }
        }
        return sorted
    }

    static func sortedIDs(_ row: [Float]) -> [Int] { row.indices.sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 } }

    /// Rows of a model-like shape (a few large logits over a broad tail) and rows full of ties.
    static func rows(vocab: Int, seed: UInt64) -> [[Float]] {
        var random = RequestRandom(seed: seed)
        func normal() -> Float { (0..<12).reduce(Float(-6)) { s, _ in s + random.uniform() } }
        let peaked = (0..<vocab).map { _ in 2 * normal() + (random.uniform() < 0.001 ? 8 : 0) }
        let flat = (0..<vocab).map { _ in 0.05 * normal() }
        let ties = (0..<vocab).map { _ in Float(Int(random.uniform() * 6)) / 2 }
        return [peaked, flat, ties]
    }

    @Test("the kept candidates equal a full sort's on 49152-token rows: top-k, min-p, top-p and their combinations")
    func truncationMatchesFullSort() {
        var sampler = Sampler()
        var checked = 0
        for (r, row) in Self.rows(vocab: 49152, seed: 11).enumerated() {
            let order = Self.sortedIDs(row)
            for topK in [0, 1, 7, 50, 4096] {
                for minP in [Float(0), 0.02, 0.5] {
                    for topP in [Float(1), 0.1, 0.5, 0.9, 0.99, 0.9999] {
                        var params = SamplingParams()
                        params.topK = topK
                        params.minP = minP
                        params.topP = topP
                        var copy = row
                        let ours = copy.withUnsafeMutableBufferPointer { sampler.candidates($0, params: params) }
                        let expected = Self.reference(row, params, order: order)
                        // Untruncated candidates (no top-k, no top-p) are walked by id, the reference holds them so.
                        #expect(ours == expected, "row \(r), top_k \(topK), min_p \(minP), top_p \(topP): \(ours.count) vs \(expected.count) kept")
                        checked += 1
                    }
                }
            }
        }
        #expect(checked == 270)
    }

    @Test("the nucleus' radix sort orders as the comparison does: larger logit first, equal ones (and -0 with +0) by id, NaN last; any subset, any order of ids")
    func radixSortOrdersAsBelow() {
        var random = RequestRandom(seed: 3)
        let specials: [Float] = [.nan, -.nan, 0, -0, .infinity, -.infinity, 1, -1, 0.5, .leastNonzeroMagnitude, -.greatestFiniteMagnitude]
        var row = (0..<70_000).map { i -> Float in
            let u = random.uniform()
            if u < 0.2 { return specials[i % specials.count] }
            if u < 0.5 { return Float(Int(random.uniform() * 8)) - 4 }  // ties
            return (random.uniform() - 0.5) * 40
        }
        var keys = [UInt64](repeating: 0, count: 2 * row.count)
        for trial in 0..<6 {
            var ids = (0..<Int32(row.count)).filter { _ in trial == 0 || random.uniform() < 0.6 }
            for i in ids.indices.reversed() where random.uniform() < 0.5 { ids.swapAt(i, Int(random.uniform() * Float(i + 1))) }
            let expected = row.withUnsafeMutableBufferPointer { r in ids.sorted { Sampler.below(r, $1, $0) } }
            let n = ids.count
            row.withUnsafeMutableBufferPointer { r in
                ids.withUnsafeMutableBufferPointer { idBuffer in
                    keys.withUnsafeMutableBufferPointer { k in
                        Sampler.sortByRank(idBuffer, r, keys: UnsafeMutableBufferPointer(rebasing: k[0..<n]),
                                           spare: UnsafeMutableBufferPointer(rebasing: k[n..<2 * n]))
                    }
                }
            }
            #expect(ids == expected, "trial \(trial)")
        }
    }

    @Test("top log-probabilities: the n largest logits, descending, ties to the lower id, each minus log Z")
    func topLogprobs() {
        var random = RequestRandom(seed: 9)
        var row = (0..<5000).map { _ in Float(Int(random.uniform() * 40)) / 4 }  // many ties
        let expected = Array(Self.sortedIDs(row).prefix(7))
        let top = row.withUnsafeMutableBufferPointer { Sampler.topLogprobs($0, count: 7, logZ: 2.5) }
        #expect(top.map(\.token) == expected)
        #expect(top.map(\.logprob) == expected.map { row[$0] - 2.5 })
    }

    @Test("draws follow the truncated softmax: nothing outside the nucleus, frequencies within 1.5% of the probabilities")
    func drawFrequencies() {
        let logits: [Float] = [2, 1.5, 1, 0.5, 0, -0.5, -1, -3]
        var params = SamplingParams()
        params.topP = 0.8
        params.temperature = 0.9
        let scaled = logits.map { $0 / 0.9 }
        let kept = Self.reference(scaled, params)
        let largest = scaled.max()!
        let total = kept.reduce(Float(0)) { $0 + expf(scaled[$1] - largest) }
        var sampler = Sampler()
        var random = RequestRandom(seed: 5)
        var counts = [Int](repeating: 0, count: logits.count)
        let draws = 40_000
        for _ in 0..<draws {
            var row = logits
            counts[row.withUnsafeMutableBufferPointer { sampler.sample($0, params: params, prompt: [], output: [], random: &random).token }] += 1
        }
        #expect(kept == [0, 1, 2])  // weights 1, .574, .329 of 2.302: cumulative .434, .684, .827
        for id in logits.indices {
            let expected = kept.contains(id) ? expf(scaled[id] - largest) / total : 0
            #expect(abs(Float(counts[id]) / Float(draws) - expected) < 0.015, "token \(id): \(counts[id]) of \(draws), expected \(expected)")
        }
        // Untruncated sampling walks by id: the same distribution.
        params.topP = 1
        counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<draws {
            var row = logits
            counts[row.withUnsafeMutableBufferPointer { sampler.sample($0, params: params, prompt: [], output: [], random: &random).token }] += 1
        }
        let all = scaled.reduce(Float(0)) { $0 + expf($1 - largest) }
        for id in logits.indices {
            #expect(abs(Float(counts[id]) / Float(draws) - expf(scaled[id] - largest) / all) < 0.015, "token \(id) untruncated")
        }
    }

    @Test("softmax weights: within 2 ulp of libm's expf on [-87.3, 0], exactly 1 at 0, 0 below and for -inf and NaN; the vectorized pass gives the scalar's bits")
    func softmaxWeights() {
        var worst: Float = 0
        var x: Float = 0
        while x >= -87.3 {
            let ours = SoftmaxWeights.weight(x), libm = expf(x)
            worst = max(worst, abs(ours - libm) / libm.ulp)
            x -= 0.000_731
        }
        #expect(worst <= 2, "largest difference \(worst) ulp")
        #expect(SoftmaxWeights.weight(0) == 1)
        #expect(SoftmaxWeights.weight(-87.4) == 0 && SoftmaxWeights.weight(-.infinity) == 0 && SoftmaxWeights.weight(.nan) == 0)
        let row: [Float] = (0..<1003).map { i in i == 500 ? .nan : i == 501 ? -.infinity : Float(i % 97) * 0.37 - 20 }
        let largest = row.withUnsafeBufferPointer { SoftmaxWeights.largest($0) }
        #expect(largest == 96 * 0.37 - 20)
        var w = [Float](repeating: -1, count: row.count)
        row.withUnsafeBufferPointer { r in w.withUnsafeMutableBufferPointer { SoftmaxWeights.weights(r, largest: largest, into: $0.baseAddress!) } }
        #expect(w == row.map { SoftmaxWeights.weight($0 - largest) })
        // Block sums and the index they lead to, against a plain walk.
        var sums = [Float](repeating: 0, count: 16)
        w.withUnsafeBufferPointer { SoftmaxWeights.blockSums($0.baseAddress!, count: $0.count, into: &sums) }
        #expect(sums.reduce(0, +) > 0 && sums[15] == w[960...].reduce(0, +))
        var random = RequestRandom(seed: 4)
        for _ in 0..<200 {
            let target = random.uniform() * sums.reduce(0, +)
            let index = w.withUnsafeBufferPointer { SoftmaxWeights.index($0.baseAddress!, count: $0.count, sums: sums, target: target) }
            let plain = Double(target)
            var c = 0.0, expected = w.count - 1
            for (i, v) in w.enumerated() {
                c += Double(v)
                if plain < c { expected = i; break }
            }
            #expect(abs(index - expected) <= 1 && w[index] > 0, "target \(target): \(index) vs \(expected)")
        }
    }

    @Test("the exact reference for device draws (ExactDraw: sorted candidates, Double sums) draws what the sampler draws, but where the sampler's Float sums drift by more than a token's width")
    func exactDrawAgreesWithTheSampler() {
        var reference = ReferenceSampler()
        // Not top-k 40 with top_p 0.9: on the row of ties, 36 of 40 equal weights reach 0.9 exactly, and whether the
        // cut falls after 36 or 37 depends on the last bit of the sampler's Float sum (the exact reference says 36).
        let settings: [(temperature: Float, topK: Int, topP: Float, minP: Float)] = [
            (1, 0, 1, 0), (0.7, 0, 1, 0), (0.8, 0, 0.95, 0), (1, 50, 1, 0), (1.3, 45, 0.9, 0.05), (1, 0, 1, 0.1), (0.5, 0, 0.5, 0),
        ]
        var draws = 0, differing = 0, truncatedDiffering = 0
        for row in Self.rows(vocab: 1000, seed: 23) {
            for s in settings {
                var params = SamplingParams()
                (params.temperature, params.topK, params.topP, params.minP) = (s.temperature, s.topK, s.topP, s.minP)
                let exact = ExactDraw(row[...], params: params)
                for k in 0..<64 {
                    let u = Float(k * 262_144 + 131_072) / 16_777_216  // (k + 1/2) / 64, exactly
                    draws += 1
                    if exact.token(at: u) != reference.draw(row[...], params: params, uniform: u) {
                        differing += 1
                        if s.topK > 0 || s.topP < 1 { truncatedDiffering += 1 }
                    }
                }
            }
        }
        // A wrong order, cut or walk would differ on a large share of the draws; Float drift on a few.
        #expect(draws == 3 * 7 * 64)
        #expect(differing <= draws / 100, "\(differing) of \(draws) draws differ")
        #expect(truncatedDiffering <= 4, "\(truncatedDiffering) truncated draws differ")
    }

    @Test("penalties as vLLM applies them: repetition on prompt and output tokens (positive divided, negative multiplied), frequency times the output count, presence once; the same bits as a plain reference, twice over one sampler")
    func penalties() {
        // A hand-checked row: token 1 (positive, in the prompt) divided by 2; token 2 (negative, in the output twice)
        // multiplied by 2, then 2 · 0.5 + 0.25 subtracted; token 4 (in the output once) 0.5 + 0.25 subtracted.
        var params = SamplingParams()
        params.repetitionPenalty = 2
        params.frequencyPenalty = 0.5
        params.presencePenalty = 0.25
        var sampler = Sampler()
        var row: [Float] = [1, 3, -1, 0.5, 0.5]
        row.withUnsafeMutableBufferPointer { sampler.applyPenalties($0, params: params, prompt: [1, 1, 9, -3], output: [2, 4, 2]) }
        #expect(row == [1, 1.5, -3.25, 0.5, 0.5 / 2 - 0.75])
        // Random rows, prompts and outputs against the plain definition (sets and a dictionary), bit for bit; the
        // sampler's scratch reused from row to row.
        var generator = SystemRandomNumberGenerator()
        for trial in 0..<40 {
            let n = 2000
            let original = (0..<n).map { _ in Float.random(in: -8...8, using: &generator) }
            let prompt = (0..<Int.random(in: 0...300, using: &generator)).map { _ in Int.random(in: -5..<(n + 5), using: &generator) }
            let output = (0..<Int.random(in: 0...100, using: &generator)).map { _ in Int.random(in: 0..<n, using: &generator) }
            var p = SamplingParams()
            p.repetitionPenalty = trial % 3 == 0 ? 1 : Float.random(in: 0.5...2, using: &generator)
            p.frequencyPenalty = trial % 4 == 1 ? 0 : Float.random(in: -1...1, using: &generator)
            p.presencePenalty = trial % 5 == 2 ? 0 : Float.random(in: -1...1, using: &generator)
            var expected = original
            if p.repetitionPenalty != 1 {
                for t in Set(prompt).union(output) where t >= 0 && t < n {
                    expected[t] = expected[t] > 0 ? expected[t] / p.repetitionPenalty : expected[t] * p.repetitionPenalty
                }
            }
            var counts: [Int: Int] = [:]
            for t in output { counts[t, default: 0] += 1 }
            if p.frequencyPenalty != 0 || p.presencePenalty != 0 {
                for (t, c) in counts { expected[t] -= p.frequencyPenalty * Float(c) + p.presencePenalty }
            }
            var got = original
            got.withUnsafeMutableBufferPointer { sampler.applyPenalties($0, params: p, prompt: prompt, output: output) }
            #expect(got.map(\.bitPattern) == expected.map(\.bitPattern), "trial \(trial)")
        }
    }

    @Test("rows without a finite largest logit fall back to the argmax; NaN logits are never drawn")
    func degenerateRows() {
        var sampler = Sampler()
        var random = RequestRandom(seed: 9)
        var params = SamplingParams()
        params.topP = 0.9
        func draw(_ logits: [Float]) -> Int {
            var row = logits
            return row.withUnsafeMutableBufferPointer { sampler.sample($0, params: params, prompt: [], output: [], random: &random).token }
        }
        #expect(draw([-.infinity, -.infinity, -.infinity]) == 0)
        #expect(draw([0, .infinity, 1, .infinity]) == 1)
        for topK in [0, 2] {
            params.topK = topK
            let tokens = (0..<200).map { _ in draw([.nan, 1, .nan, 1.2, -.infinity]) }
            #expect(Set(tokens).isSubset(of: [1, 3]), "top_k \(topK): \(Set(tokens))")
            #expect(Set(tokens).count == 2)
        }
    }
}
