import ArgumentParser
import Engine
import Foundation

/// `swiftwise bench sampler`: the host sampler's time per row (penalty-free draws: temperature, top-k, min-p, top-p)
/// against the plain way, measured in the same run: every token sorted by logit, then the cuts and the walk. Rows of
/// two shapes: flat (a random-weight model's: top-p keeps most of the vocabulary, the sampler's worst case) and
/// peaked (a trained model's: a few tokens hold most of the mass).
struct SamplerBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sampler", abstract: "Host sampling time per row against a full sort of the vocabulary.")

    @Option(help: "Vocabulary size.") var vocab = 128_256
    @Option(help: "Draws per measurement; the median of five measurements is reported.") var draws = 20

    func run() throws {
        guard vocab > 1, draws > 0 else { throw ValidationError("--vocab must be above 1 and --draws positive") }
        var state: UInt64 = 0x5eed
        func normal() -> Float {  // Box-Muller over a fixed LCG: the same rows on every run
            func uniform() -> Float {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return (Float(state >> 40) + 0.5) / Float(1 << 24)
            }
            return (-2 * Foundation.log(uniform())).squareRoot() * Foundation.cos(2 * Float.pi * uniform())
        }
        let flat = (0..<vocab).map { _ in 0.5 * normal() }
        var peaked = (0..<vocab).map { _ in 2 * normal() }
        for i in stride(from: 7, to: vocab, by: max(1, vocab / 5)) { peaked[i] += 14 }
        let settings: [(name: String, temperature: Float, topK: Int, topP: Float, minP: Float)] = [
            ("temperature 0.8, top_p 0.95", 0.8, 0, 0.95, 0), ("top_k 40", 1, 40, 1, 0), ("min_p 0.05", 1, 0, 1, 0.05),
            ("temperature 1", 1, 0, 1, 0),
        ]
        var sampler = ReferenceSampler()
        print("rows of \(vocab) logits; µs per draw (median of 5 × \(draws)); ours / a full sort")
        for (shape, row) in [("flat", flat), ("peaked", peaked)] {
            for s in settings {
                var params = SamplingParams()
                (params.temperature, params.topK, params.topP, params.minP) = (s.temperature, s.topK, s.topP, s.minP)
                func median(_ draw: (Float) -> Int) -> Double {
                    var times: [Double] = []
                    for _ in 0..<5 {
                        let start = ContinuousClock.now
                        for d in 0..<draws { _ = draw((Float(d) + 0.5) / Float(draws)) }
                        times.append((ContinuousClock.now - start).seconds / Double(draws) * 1e6)
                    }
                    return times.sorted()[2]
                }
                let ours = median { sampler.draw(row[...], params: params, uniform: $0) }
                let plain = median { Self.fullSortDraw(row, params, uniform: $0) }
                let label = "  " + shape.padding(toLength: 8, withPad: " ", startingAt: 0) + s.name.padding(toLength: 29, withPad: " ", startingAt: 0)
                print(label + String(format: "%9.0f  %9.0f  %.1fx", ours, plain, plain / ours))
            }
        }
    }

    /// The plain way: scale, sort every token (larger logit first, ties to the lower id), cut top-k, min-p and top-p
    /// in that order, walk the kept weights to uniform · their sum.
    static func fullSortDraw(_ row: [Float], _ p: SamplingParams, uniform: Float) -> Int {
        let inverse = 1 / p.temperature
        let s = row.map { $0 * inverse }
        let largest = s.max()!
        var order = Array(0..<s.count)
        order.sort { s[$0] > s[$1] || (s[$0] == s[$1] && $0 < $1) }
        if p.topK > 0 && p.topK < order.count { order.removeLast(order.count - p.topK) }
        let weights = order.map { Foundation.exp(s[$0] - largest) }
        var kept = weights.count
        if p.minP > 0 { kept = weights.firstIndex { $0 < p.minP } ?? kept }
        if p.topP < 1 {
            let total = weights[0..<kept].reduce(0, +)
            var cumulative: Float = 0
            for i in 0..<kept {
                cumulative += weights[i]
                if cumulative >= p.topP * total {
                    kept = i + 1
                    break
                }
            }
        }
        let target = uniform * weights[0..<kept].reduce(0, +)
        var cumulative: Float = 0
        for i in 0..<kept {
            cumulative += weights[i]
            if target < cumulative { return order[i] }
        }
        return order[kept - 1]
    }
}
