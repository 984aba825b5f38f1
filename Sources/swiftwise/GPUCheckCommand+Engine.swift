import Engine
import Foundation
import GPUModel
import Models
import Logging
import ServiceKit

extension GPUCheckCommand {
    /// A decode step of five rows whose logits are asked for in full (host-sampled rows) and as argmaxes (greedy
    /// rows) in turn, against the plain forms of the same step: the logits bit for bit, the argmaxes exactly. Returns
    /// the count of differing values.
    static func mixedStepCheck(_ llama: GPULlama) throws -> Int {
        let V = llama.config.vocabSize, prompt = (0..<40).map { 100 + ($0 * 37) % 20000 }
        let table = Array(0..<8)
        _ = try llama.forwardArgmax([SequenceStep(tokens: prompt, start: 0, blockTable: table, logits: .last)])
        let step = [SequenceStep(tokens: [11, 22, 33, 44, 55], start: prompt.count, blockTable: table, logits: .all)]
        let outputs: [RowOutput] = [.logits, .argmax, .logits, .logits, .argmax]
        let allLogits = try llama.forward(step), allArgmaxes = try llama.forwardArgmax(step)
        let differing = try llama.forward(step, outputs: outputs) { argmaxes, rows in
            let expectedRows = outputs.indices.filter { outputs[$0].needsLogits }.flatMap { allLogits[$0 * V..<($0 + 1) * V] }
            let expectedArgmaxes = outputs.indices.filter { !outputs[$0].needsLogits }.map { allArgmaxes[$0] }
            return zip(rows, expectedRows).filter { $0.bitPattern != $1.bitPattern }.count + abs(rows.count - expectedRows.count)
                + zip(argmaxes, expectedArgmaxes).filter { $0 != $1 }.count + abs(argmaxes.count - expectedArgmaxes.count)
        }
        print("a step of host-sampled and greedy rows (3 rows' logits, 2 argmaxes) vs the plain forms: \(differing) values differ")
        return differing
    }

    /// draw_rows against the host sampler (`ReferenceSampler`) on the same rows and uniforms: four logits rows of this
    /// model and four made-up ones (ties at the top, NaN and -inf entries, a flat row, a +inf), under temperature,
    /// top-k, min-p and top-p alone and together, at 64 uniforms each; then the time of a launch of 1 and of 32 draws
    /// (top_p 0.95). Returns the count of draws and of differing tokens, and the times in µs.
    static func deviceDrawCheck(_ llama: GPULlama) throws -> [String: Any] {
        let V = llama.config.vocabSize, prompt = (0..<60).map { 200 + ($0 * 53) % 20000 }
        let table = Array(0..<8)
        _ = try llama.forwardArgmax([SequenceStep(tokens: prompt, start: 0, blockTable: table, logits: .last)])
        var rows = try llama.forward([SequenceStep(tokens: [17, 4242, 999, 31337], start: prompt.count, blockTable: table, logits: .all)])
        func row(_ r: Int) -> ArraySlice<Float> { rows[r * V..<(r + 1) * V] }
        var ties = Array(row(0))
        let top = ties.max()!
        for i in [3, 700, 9000] { ties[i] = top }
        var holes = Array(row(1))
        for i in stride(from: 0, to: V, by: 97) { holes[i] = .nan }
        for i in stride(from: 5, to: V, by: 89) { holes[i] = -.infinity }
        var flat = [Float](repeating: 0, count: V)
        for i in stride(from: 0, to: V, by: 1000) { flat[i] = 0.5 }
        var infinite = Array(row(2))
        infinite[5000] = .infinity
        rows += ties + holes + flat + infinite
        let rowCount = rows.count / V
        let settings: [(temperature: Float, topK: Int, topP: Float, minP: Float)] = [
            (1, 0, 1, 0), (0.7, 0, 1, 0), (0.8, 0, 0.95, 0), (1, 50, 1, 0), (1.3, 40, 0.9, 0.05), (1, 0, 1, 0.1), (0.5, 0, 0.5, 0),
            (1, 1000, 0.99, 0), (1.2, 0, 0.9, 0.02),
        ]
        let uniforms = (0..<64).map { Float((Double($0) + 0.5) / 64 * 16_777_216) / 16_777_216 }
        var draws: [(row: Int, draw: DeviceDraw)] = [], expected: [Int] = []
        var reference = ReferenceSampler()
        for r in 0..<rowCount {
            for s in settings {
                var params = SamplingParams()
                params.temperature = s.temperature
                params.topK = s.topK
                params.topP = s.topP
                params.minP = s.minP
                for u in uniforms {
                    draws.append((r, DeviceDraw(inverseTemperature: s.temperature == 1 ? 1 : 1 / s.temperature, topK: s.topK, topP: s.topP,
                                                minP: s.minP, uniform: u)))
                    expected.append(reference.draw(rows[r * V..<(r + 1) * V], params: params, uniform: u))
                }
            }
        }
        let tokens = try llama.drawOnDevice(rows: rows, draws: draws)
        let differing = zip(tokens, expected).filter { $0 != $1 }.count
        for (i, (got, want)) in zip(tokens, expected).enumerated() where got != want {
            if i > 3 && differing > 8 { break }
            let d = draws[i]
            print("  differs: row \(d.row) \(d.draw): device \(got), host \(want)")
        }
        func launchMicroseconds(_ count: Int) throws -> Double {
            let nucleus = (0..<count).map { i in
                (row: i % 4, draw: DeviceDraw(inverseTemperature: 1 / 0.8, topK: 0, topP: 0.95, minP: 0, uniform: uniforms[i % 64]))
            }
            _ = try llama.drawOnDevice(rows: Array(rows[0..<4 * V]), draws: nucleus)
            let start = ContinuousClock.now
            _ = try llama.drawOnDevice(rows: Array(rows[0..<4 * V]), draws: nucleus, repeats: 50)
            let end = ContinuousClock.now
            let once = ContinuousClock.now
            _ = try llama.drawOnDevice(rows: Array(rows[0..<4 * V]), draws: nucleus)
            return ((end - start).seconds - (ContinuousClock.now - once).seconds) / 49 * 1e6
        }
        let one = try launchMicroseconds(1), many = try launchMicroseconds(32)
        print(String(format: "draw_rows vs the host sampler: %d of %d draws differ (%d rows, %d settings, 64 uniforms); a launch of 1 draw %.0f µs, of 32 draws %.0f µs (top_p 0.95)",
                     differing, draws.count, rowCount, settings.count, one, many))
        return ["draws": draws.count, "differing": differing, "launch_1_us": one, "launch_32_us": many]
    }

    /// Decode through the engine, greedy (argmax on the GPU) and sampled (temperature 0.8, top_p 0.95) on the GPU and
    /// on the host, at batch 1 and 32 (prompt 512, 128 new tokens each).
    static func engineRates(_ llama: GPULlama) throws -> [String: Double] {
        var greedy = SamplingParams()
        greedy.temperature = 0
        var sampled = SamplingParams()
        sampled.temperature = 0.8
        sampled.topP = 0.95
        var rates: [String: Double] = [:]
        let drawsOnDevice = llama.drawsOnDevice
        defer { llama.drawsOnDevice = drawsOnDevice }
        for batch in [1, 32] {
            rates["batch\(batch)_greedy"] = try engineDecodeRate(llama, batch: batch, prompt: 512, tokens: 128, params: greedy)
            llama.drawsOnDevice = true
            rates["batch\(batch)_sampled"] = try engineDecodeRate(llama, batch: batch, prompt: 512, tokens: 128, params: sampled)
            llama.drawsOnDevice = false
            rates["batch\(batch)_sampled_host"] = try engineDecodeRate(llama, batch: batch, prompt: 512, tokens: 128, params: sampled)
            llama.drawsOnDevice = drawsOnDevice
        }
        print(String(format: "engine decode (scheduling + forward + sampling; prompt 512, 128 new): batch 1 greedy %.1f, sampled (temperature 0.8, top_p 0.95) on the GPU %.1f, on the host %.1f tok/s; batch 32 greedy %.1f, sampled on the GPU %.1f, on the host %.1f tok/s",
                     rates["batch1_greedy"]!, rates["batch1_sampled"]!, rates["batch1_sampled_host"]!, rates["batch32_greedy"]!,
                     rates["batch32_sampled"]!, rates["batch32_sampled_host"]!))
        return rates
    }

    /// Output tokens/s of `batch` requests through the engine on the GPU backend: the serving path without HTTP
    /// (scheduling, the forward pass, then the argmax on the GPU or the logits sampled on the host), over the steps
    /// in which every request decodes (from the last request's first token to the last token).
    static func engineDecodeRate(_ llama: GPULlama, batch: Int, prompt: Int, tokens: Int, params: SamplingParams) throws -> Double {
        var config = EngineConfig(maxModelLen: prompt + tokens + 1, numBlocks: llama.numBlocks)
        config.blockSize = llama.blockSize
        config.maxNumSeqs = batch
        config.maxNumBatchedTokens = 2048
        let engine = EngineCore(backend: llama, config: config, metricsFactory: MetricsEndpoint().factory, logger: Logger(label: "gpu-check"))
        engine.start()
        defer { engine.shutdown() }
        let times = TokenTimes(requests: batch)
        let group = DispatchGroup()
        for b in 0..<batch {
            var request = params
            request.maxTokens = tokens
            request.ignoreEOS = true
            request.seed = UInt64(b)
            let ids = (0..<prompt).map { 100 + ($0 * 31 + 7 * b + 3) % 30000 }
            let stream = try engine.submit(EngineRequest(id: "bench-\(b)", prompt: ids, params: request))
            group.enter()
            Task {
                for await event in stream { if case .token = event { times.record(b) } }
                group.leave()
            }
        }
        group.wait()
        return times.decodeRate()
    }

    /// When each request's tokens arrived.
    final class TokenTimes: @unchecked Sendable {
        private let lock = NSLock()
        private var times: [[ContinuousClock.Instant]]

        init(requests: Int) { times = Array(repeating: [], count: requests) }

        func record(_ request: Int) {
            let now = ContinuousClock.now
            lock.withLock { times[request].append(now) }
        }

        /// Tokens after the moment every request has its first one, over the time from then to the last token.
        func decodeRate() -> Double {
            lock.withLock {
                guard let start = times.compactMap(\.first).max(), let end = times.compactMap(\.last).max(), end > start else { return 0 }
                let count = times.reduce(0) { $0 + $1.filter { $0 > start }.count }
                return Double(count) / (end - start).seconds
            }
        }
    }
}
