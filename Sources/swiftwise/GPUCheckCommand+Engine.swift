import Engine
import Foundation
import GPUModel
import Logging
import ServiceKit

extension GPUCheckCommand {
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
