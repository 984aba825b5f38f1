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
        let differing = try llama.forward(step, outputs: outputs) { argmaxes, _, rows in
            let expectedRows = outputs.indices.filter { outputs[$0].needsLogits }.flatMap { allLogits[$0 * V..<($0 + 1) * V] }
            let expectedArgmaxes = outputs.indices.filter { !outputs[$0].needsLogits }.map { allArgmaxes[$0] }
            return zip(rows, expectedRows).filter { $0.bitPattern != $1.bitPattern }.count + abs(rows.count - expectedRows.count)
                + zip(argmaxes, expectedArgmaxes).filter { $0 != $1 }.count + abs(argmaxes.count - expectedArgmaxes.count)
        }
        print("a step of host-sampled and greedy rows (3 rows' logits, 2 argmaxes) vs the plain forms: \(differing) values differ")
        return differing
    }

    /// Decode through the engine, greedy (argmax on the GPU) and sampled (temperature 0.8, top_p 0.95) on the GPU and
    /// on the host, at batch 1 and 32 (prompt 512, 128 new tokens each).
    static func engineRates(_ llama: GPULlama) throws -> [String: Double] {
        var greedy = SamplingParams()
        greedy.temperature = 0
        var sampled = SamplingParams()
        sampled.temperature = 0.8
        sampled.topP = 0.95
        var withLogprobs = sampled
        withLogprobs.logprobs = 5
        var rates: [String: Double] = [:]
        let drawsOnDevice = llama.drawsOnDevice, logprobsOnDevice = llama.drawsLogprobsOnDevice
        defer { llama.drawsOnDevice = drawsOnDevice; llama.drawsLogprobsOnDevice = logprobsOnDevice }
        for batch in [1, 32] {
            func rate(_ params: SamplingParams, device: Bool, logprobs: Bool = false) throws -> Double {
                llama.drawsOnDevice = device
                llama.drawsLogprobsOnDevice = logprobs
                return try engineDecodeRate(llama, batch: batch, prompt: 512, tokens: 128, params: params)
            }
            rates["batch\(batch)_greedy"] = try rate(greedy, device: drawsOnDevice, logprobs: logprobsOnDevice)
            rates["batch\(batch)_sampled"] = try rate(sampled, device: true)
            rates["batch\(batch)_sampled_host"] = try rate(sampled, device: false)
            rates["batch\(batch)_logprobs"] = try rate(withLogprobs, device: true, logprobs: true)
            rates["batch\(batch)_logprobs_host"] = try rate(withLogprobs, device: true, logprobs: false)
        }
        for batch in [1, 32] {
            print(String(format: "engine decode (scheduling + forward + sampling; prompt 512, 128 new), batch %d: greedy %.1f tok/s; sampled (temperature 0.8, top_p 0.95) on the GPU %.1f, on the host %.1f; with logprobs 5 on the GPU %.1f, on the host %.1f",
                         batch, rates["batch\(batch)_greedy"]!, rates["batch\(batch)_sampled"]!, rates["batch\(batch)_sampled_host"]!,
                         rates["batch\(batch)_logprobs"]!, rates["batch\(batch)_logprobs_host"]!))
        }
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
