import Engine
import Foundation
import GPUModel
import Models

extension GPUCheckCommand {
    /// draw_rows against an exact reference (`ExactDraw`: sorts, Double sums) and against the host sampler, on the
    /// same rows and uniforms: four logits rows of this model and four made-up ones (ties at the top, NaN and -inf
    /// entries, a flat row, a +inf), under temperature, top-k, min-p and top-p alone and together, at 64 uniforms each;
    /// then the time of a launch of 1 and of 32 draws (top_p 0.95). The host sampler adds in Float, so where many
    /// tokens share the mass (the flat row, the tails) its walk drifts by more than a token's width: the exact
    /// reference is the one the device must match.
    static func deviceDrawCheck(_ llama: GPULlama) throws -> [String: Any] {
        let V = llama.config.vocabSize, prompt = (0..<60).map { 200 + ($0 * 53) % 20000 }
        var rows = try modelRows(llama, prompt: prompt, next: [17, 4242, 999, 31337])
        var ties = Array(rows[0..<V])
        let top = ties.max()!
        for i in [3, 700, 9000] { ties[i] = top }
        var holes = Array(rows[V..<2 * V])
        for i in stride(from: 0, to: V, by: 97) { holes[i] = .nan }
        for i in stride(from: 5, to: V, by: 89) { holes[i] = -.infinity }
        var flat = [Float](repeating: 0, count: V)
        for i in stride(from: 0, to: V, by: 1000) { flat[i] = 0.5 }
        var infinite = Array(rows[2 * V..<3 * V])
        infinite[5000] = .infinity
        rows += ties + holes + flat + infinite
        let rowCount = rows.count / V
        let settings: [(temperature: Float, topK: Int, topP: Float, minP: Float)] = [
            (1, 0, 1, 0), (0.7, 0, 1, 0), (0.8, 0, 0.95, 0), (1, 50, 1, 0), (1.3, 40, 0.9, 0.05), (1, 0, 1, 0.1), (0.5, 0, 0.5, 0),
            (1, 1000, 0.99, 0), (1.2, 0, 0.9, 0.02),
        ]
        let uniforms = (0..<64).map { Float((Double($0) + 0.5) / 64 * 16_777_216) / 16_777_216 }
        var draws: [(row: Int, draw: DeviceDraw)] = [], exact: [Int] = [], host: [Int] = []
        var reference = ReferenceSampler()
        for r in 0..<rowCount {
            let row = rows[r * V..<(r + 1) * V]
            for s in settings {
                var params = SamplingParams()
                params.temperature = s.temperature
                params.topK = s.topK
                params.topP = s.topP
                params.minP = s.minP
                let candidates = ExactDraw(row, params: params)
                for u in uniforms {
                    draws.append((r, DeviceDraw(params, uniform: u)))
                    exact.append(candidates.token(at: u))
                    host.append(reference.draw(row, params: params, uniform: u))
                }
            }
        }
        // Penalties (applied on the device to the keys it draws from, the logits untouched): on the model's rows, each
        // setting with a prompt and an output that share tokens, greedy and sampled, against the exact draw from the
        // host-penalized row.
        let penaltySettings: [(temperature: Float, topP: Float, repetition: Float, frequency: Float, presence: Float)] = [
            (0, 1, 1.3, 0, 0), (0, 1, 1, 0.5, 0.2), (0.8, 0.95, 1.2, 0, 0), (1, 1, 1, 0.4, 0.3), (0.7, 0.9, 1.1, 0.2, -0.5),
        ]
        let penaltyPrompt = prompt + [17, 4242, 999], penaltyOutput = [31337, 4242, 17, 4242, 5, V - 1, 31337, 4242]
        for r in 0..<4 {
            let row = rows[r * V..<(r + 1) * V]
            for s in penaltySettings {
                var params = SamplingParams()
                (params.temperature, params.topP) = (s.temperature, s.topP)
                (params.repetitionPenalty, params.frequencyPenalty, params.presencePenalty) = (s.repetition, s.frequency, s.presence)
                let penalized = reference.penalized(row, params: params, prompt: penaltyPrompt, output: penaltyOutput)
                var plain = params
                (plain.repetitionPenalty, plain.frequencyPenalty, plain.presencePenalty) = (1, 0, 0)
                if params.isGreedy { (plain.temperature, plain.topK) = (1, 1) }
                let candidates = ExactDraw(penalized[...], params: plain)
                for u in uniforms.prefix(params.isGreedy ? 1 : 16) {
                    draws.append((r, DeviceDraw(params, prompt: penaltyPrompt, output: penaltyOutput) { u }))
                    exact.append(candidates.token(at: params.isGreedy ? 0 : u))
                    host.append(params.isGreedy ? Logits.argmax(penalized) : reference.draw(penalized[...], params: plain, uniform: u))
                }
            }
        }
        let tokens = try llama.drawOnDevice(rows: rows, draws: draws).map(\.token)
        let fromExact = zip(tokens, exact).filter { $0 != $1 }.count
        let hostFromExact = zip(host, exact).filter { $0 != $1 }.count
        let fromHost = zip(tokens, host).filter { $0 != $1 }.count
        // The launch shape must not matter: a lone draw spreads over 32 blocks, 8 draws over 16 blocks each, and a
        // launch of 256 draws loops over its rows with a few blocks to each (the tokens above).
        let sample = Array(stride(from: 0, to: draws.count, by: 37))
        let alone = try llama.drawOnDevice(rows: rows, draws: sample.map { draws[$0] }, perLaunch: 1).map(\.token)
        let eights = try llama.drawOnDevice(rows: rows, draws: sample.map { draws[$0] }, perLaunch: 8).map(\.token)
        let shapes = sample.indices.filter { alone[$0] != tokens[sample[$0]] || eights[$0] != tokens[sample[$0]] }.count
        print("draw_rows across launch shapes (1, 8 and 256 draws a launch): \(shapes) of \(sample.count) draws differ")
        var shown = 0
        for i in draws.indices where tokens[i] != exact[i] && shown < 8 {
            shown += 1
            print("  differs: row \(draws[i].row) \(draws[i].draw): device \(tokens[i]), exact \(exact[i]), host \(host[i])")
        }
        func launchMicroseconds(_ count: Int) throws -> Double {
            let nucleus = (0..<count).map { i in
                (row: i % 4, draw: DeviceDraw(inverseTemperature: 1 / 0.8, topK: 0, topP: 0.95, minP: 0, uniform: uniforms[i % 64]))
            }
            let logits = Array(rows[0..<4 * V])
            func seconds(_ repeats: Int) throws -> Double {
                let start = ContinuousClock.now
                _ = try llama.drawOnDevice(rows: logits, draws: nucleus, repeats: repeats)
                return (ContinuousClock.now - start).seconds
            }
            _ = try seconds(1)
            return (try seconds(51) - seconds(1)) / 50 * 1e6  // the upload and download cancel out
        }
        let one = try launchMicroseconds(1), many = try launchMicroseconds(32)
        print(String(format: "draw_rows: %d of %d draws differ from the exact reference (%d rows, %d settings, 64 uniforms; penalties: 4 rows, 5 settings); from the host sampler %d (the host sampler from the exact reference: %d); a launch of 1 draw %.0f µs, of 32 draws %.0f µs (top_p 0.95)",
                     fromExact, draws.count, rowCount, settings.count, fromHost, hostFromExact, one, many))
        return ["draws": draws.count, "differing_from_exact": fromExact, "differing_from_host": fromHost, "host_differing_from_exact": hostFromExact,
                "launch_1_us": one, "launch_32_us": many, "differing_across_launch_shapes": shapes]
    }

    /// The logits rows of this model for `next` after `prompt` (the prompt's KV in blocks 0..<8).
    static func modelRows(_ llama: GPULlama, prompt: [Int], next: [Int]) throws -> [Float] {
        let table = Array(0..<8)
        _ = try llama.forwardArgmax([SequenceStep(tokens: prompt, start: 0, blockTable: table, logits: .last)])
        return try llama.forward([SequenceStep(tokens: next, start: prompt.count, blockTable: table, logits: .all)])
    }
}
