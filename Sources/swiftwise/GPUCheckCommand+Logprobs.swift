import Engine
import Foundation
import GPUModel
import Models

extension GPUCheckCommand {
    /// draw_rows' log-probabilities (`DeviceDraw.logprobs`) against the host sampler's for the same token: rows of
    /// this model, sampled and greedy, with and without penalties, 0 to 20 top tokens, 8 uniforms each. log Z comes
    /// from exact fixed-point sums on the device and Float sums on the host, so values agree to rounding; the top
    /// tokens must be the same ones in the same order.
    static func deviceLogprobCheck(_ llama: GPULlama) throws -> [String: Any] {
        let V = llama.config.vocabSize, prompt = (0..<40).map { 300 + ($0 * 71) % 20000 }
        let rows = try modelRows(llama, prompt: prompt, next: [5, 600, 7000, 23])
        let output = [600, 5, 31337, 600]
        let settings: [(temperature: Float, topK: Int, topP: Float, repetition: Float, frequency: Float, top: Int)] = [
            (0.8, 0, 0.95, 1, 0, 5), (0, 0, 1, 1, 0, 3), (1, 0, 1, 1, 0, 0), (0.7, 0, 1, 1.2, 0.3, 20), (1.2, 40, 1, 1, 0, 1),
        ]
        var draws: [(row: Int, draw: DeviceDraw)] = [], params: [SamplingParams] = []
        for r in 0..<rows.count / V {
            for s in settings {
                var p = SamplingParams()
                (p.temperature, p.topK, p.topP) = (s.temperature, s.topK, s.topP)
                (p.repetitionPenalty, p.frequencyPenalty, p.logprobs) = (s.repetition, s.frequency, s.top)
                for u in 0..<8 {
                    draws.append((r, DeviceDraw(p, prompt: prompt, output: output) { (Float(u) + 0.5) / 8 }))
                    params.append(p)
                }
            }
        }
        let results = try llama.drawOnDevice(rows: rows, draws: draws)
        var reference = ReferenceSampler()
        var largestDrawn: Float = 0, largestTop: Float = 0, topsDiffering = 0, missing = 0
        for (i, result) in results.enumerated() {
            guard let device = result.logprobs else {
                missing += 1
                continue
            }
            let row = rows[draws[i].row * V..<(draws[i].row + 1) * V]
            let host = reference.logprobs(row, params: params[i], prompt: prompt, output: output, token: result.token,
                                          top: params[i].logprobs ?? 0)
            largestDrawn = max(largestDrawn, abs(device.logprob - host.logprob))
            if device.top.map(\.token) != host.top.map(\.token) {
                topsDiffering += 1
                if topsDiffering <= 4 { print("  top differs: draw \(i): device \(device.top.map(\.token)), host \(host.top.map(\.token))") }
            } else {
                for (a, b) in zip(device.top, host.top) { largestTop = max(largestTop, abs(a.logprob - b.logprob)) }
            }
        }
        print(String(format: "draw_rows log-probabilities: %d draws (%d without them); the drawn token's within %.2e of the host's; top tokens differ in %d, their values within %.2e",
                     results.count, missing, largestDrawn, topsDiffering, largestTop))
        return ["draws": results.count, "missing": missing, "largest_drawn_difference": largestDrawn, "tops_differing": topsDiffering,
                "largest_top_difference": largestTop]
    }
}
