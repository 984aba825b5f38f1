@testable import Engine
import Foundation
import Logging
import ModelFiles
import Models
import ServiceKit
import Testing
import Tokenizers

/// The engine in process on the default model: batching, preemption and prefix caching never change a result.
extension Serving {
    @Suite("Engine on the default model", .serialized, .timeLimit(.minutes(5)))
    struct EngineTests {
        static let gguf = try! GGUFFile(path: TestData.defaultModelPath)
        static let model = try! LlamaModel(gguf: gguf)
        static let tokenizer = try! BPETokenizer(gguf: gguf)

        struct Result: Equatable {
            var tokens: [Int]
            var usage: EngineUsage
        }

        static func engine(numBlocks: Int = 256, maxBatched: Int = 256, prefixCaching: Bool = true) -> (EngineCore, MetricsEndpoint) {
            var config = EngineConfig(maxModelLen: 1024, numBlocks: numBlocks)
            config.maxNumBatchedTokens = maxBatched
            config.enablePrefixCaching = prefixCaching
            config.eosTokenIDs = tokenizer.eosTokenIDs
            let metrics = MetricsEndpoint()
            let engine = EngineCore(backend: CPUBackend(model: model, blockSize: config.blockSize, numBlocks: config.numBlocks), config: config,
                                metricsFactory: metrics.factory, logger: Logger(label: "test"))
            engine.start()
            return (engine, metrics)
        }

        static func run(_ engine: EngineCore, _ id: String, _ prompt: [Int], maxTokens: Int, ignoreEOS: Bool = true) async throws -> Result {
            var params = SamplingParams()
            params.temperature = 0
            params.maxTokens = maxTokens
            params.ignoreEOS = ignoreEOS
            var tokens: [Int] = []
            for await event in try engine.submit(EngineRequest(id: id, prompt: prompt, params: params)) {
                switch event {
                case .token(let t): tokens.append(t.token)
                case .finished(_, let usage): return Result(tokens: tokens, usage: usage)
                case .promptKV: break
                }
            }
            throw CancellationError()
        }

        /// Prompts of mixed lengths cut from one text, each a different prefix length and start.
        static func prompts(_ count: Int, maxLength: Int) -> [[Int]] {
            let text = """
                The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined movable \
                metal type, oil-based inks and a wooden press adapted from wine making. Within decades, presses spread to more \
                than two hundred cities across Europe; books became cheaper, literacy rose, and ideas travelled faster than ever. \
                Scholars argue about how much the press caused the Reformation and the scientific revolution, but few doubt \
                that it changed how knowledge was stored, copied and shared.
                """
            let ids = tokenizer.encode(text)
            return (0..<count).map { i in
                let start = (i * 7) % 40
                let length = 3 + (i * 13) % (maxLength - 3)
                return Array(ids[start..<min(ids.count, start + length)])
            }
        }

        @Test("32 concurrent greedy requests of mixed lengths each equal the same request run alone, token for token")
        func concurrentEqualsAlone() async throws {
            let prompts = Self.prompts(32, maxLength: 60)
            let maxTokens = prompts.indices.map { 2 + $0 % 7 }
            let (alone, _) = Self.engine(prefixCaching: false)
            var expected: [[Int]] = []
            for (i, p) in prompts.enumerated() { expected.append(try await Self.run(alone, "alone-\(i)", p, maxTokens: maxTokens[i]).tokens) }
            alone.shutdown()

            let (batched, metrics) = Self.engine(maxBatched: 128)
            let results = try await withThrowingTaskGroup(of: (Int, Result).self) { group in
                for (i, p) in prompts.enumerated() {
                    group.addTask { (i, try await Self.run(batched, "b-\(i)", p, maxTokens: maxTokens[i])) }
                }
                var out = [Result?](repeating: nil, count: prompts.count)
                for try await (i, r) in group { out[i] = r }
                return out.map { $0! }
            }
            for i in prompts.indices {
                #expect(results[i].tokens == expected[i], "request \(i): prompt \(prompts[i].count) tokens")
            }
            let text = metrics.render()
            #expect(text.contains("vllm:generation_tokens_total \(maxTokens.reduce(0, +))"))
            batched.shutdown()
        }

        @Test("a KV cache too small for everyone preempts and recomputes; results are unchanged and every block comes back")
        func preemption() async throws {
            let prompts = Self.prompts(6, maxLength: 50).map { Array($0.prefix(40)) + [100, 200] }
            let (alone, _) = Self.engine(prefixCaching: false)
            var expected: [[Int]] = []
            for (i, p) in prompts.enumerated() { expected.append(try await Self.run(alone, "a\(i)", p, maxTokens: 24).tokens) }
            alone.shutdown()
            // 12 blocks × 16 tokens = 192 slots for 6 × ~60 tokens.
            let (small, metrics) = Self.engine(numBlocks: 12, maxBatched: 64)
            let results = try await withThrowingTaskGroup(of: (Int, Result).self) { group in
                for (i, p) in prompts.enumerated() { group.addTask { (i, try await Self.run(small, "p\(i)", p, maxTokens: 24)) } }
                var out = [Result?](repeating: nil, count: prompts.count)
                for try await (i, r) in group { out[i] = r }
                return out.map { $0! }
            }
            #expect(results.map(\.tokens) == expected)
            let text = metrics.render()
            #expect(!text.contains("vllm:num_preemptions_total 0"), "no preemption happened: the test did not test it")
            #expect(text.contains("vllm:kv_cache_usage_perc 0.0"))
            small.shutdown()
        }

        @Test("prefix caching: a second prompt sharing a 64-token prefix computes only its new tokens, same output as uncached")
        func prefixCaching() async throws {
            let base = Self.tokenizer.encode(String(repeating: "A quick brown fox jumps over the lazy dog near the river bank. ", count: 6))
            let shared = Array(base.prefix(64))
            let first = shared + [11, 22, 33]
            let second = shared + [44, 55, 66, 77, 88]
            let (cached, cachedMetrics) = Self.engine()
            let (plain, _) = Self.engine(prefixCaching: false)
            _ = try await Self.run(cached, "first", first, maxTokens: 4)
            let hit = try await Self.run(cached, "second", second, maxTokens: 8)
            let reference = try await Self.run(plain, "second", second, maxTokens: 8)
            #expect(hit.tokens == reference.tokens)
            #expect(hit.usage.localCachedTokens == 64)
            #expect(hit.usage.computedPromptTokens == second.count - 64)
            #expect(reference.usage.localCachedTokens == 0)
            // The very same prompt again: every full block hits, the last token is still computed.
            let again = try await Self.run(cached, "again", second, maxTokens: 8)
            #expect(again.tokens == reference.tokens)
            #expect(again.usage.computedPromptTokens == second.count - 64)
            // The same through the metrics: 0 + 64 + 64 prefix hits; computed tokens are what the hits left.
            let text = cachedMetrics.render()
            #expect(text.contains("vllm:prefix_cache_hits_total 128"), "\(text)")
            #expect(text.contains("vllm:prefix_cache_queries_total \(first.count + 2 * second.count)"))
            #expect(text.contains("swiftwise:prompt_tokens_computed_total \(first.count + 2 * (second.count - 64))"))
            cached.shutdown()
            plain.shutdown()
        }

        @Test("external KV (as a decode node gets it) is used instead of computing, and gives identical results")
        func externalKV() async throws {
            let prompt = Array(Self.prompts(1, maxLength: 60)[0].prefix(40)) + Array(repeating: 300, count: 30)
            let (producer, _) = Self.engine(prefixCaching: false)
            var params = SamplingParams()
            params.temperature = 0
            params.maxTokens = 1
            var exported: ExternalKV?
            for await event in try producer.submit(EngineRequest(id: "p", prompt: prompt, params: params, exportPromptKV: true)) {
                if case .promptKV(let kv) = event { exported = kv }
            }
            let kv = try #require(exported)
            #expect(kv.range == 0..<prompt.count)
            #expect(kv.data.count == 2 * Self.model.config.layers * prompt.count * Self.model.config.kvDim)
            let (consumer, _) = Self.engine(prefixCaching: false)
            params.maxTokens = 12
            params.ignoreEOS = true
            var tokens: [Int] = []
            var usage = EngineUsage()
            for await event in try consumer.submit(EngineRequest(id: "d", prompt: prompt, params: params, external: kv)) {
                if case .token(let t) = event { tokens.append(t.token) }
                if case .finished(_, let u) = event { usage = u }
            }
            let reference = try await Self.run(producer, "ref", prompt, maxTokens: 12)
            #expect(tokens == reference.tokens)
            #expect(usage.externalTokens == prompt.count - 1)
            #expect(usage.computedPromptTokens == 1)
            producer.shutdown()
            consumer.shutdown()
        }

        /// Counts the logits rows the engine asks for by kind. With `draws`, it samples on its "device": a drawn row's
        /// token is ⌊uniform · 1000⌋, which shows the uniform the engine handed over.
        final class CountingBackend: ForwardBackend, @unchecked Sendable {
            let base: CPUBackend
            let drawsOnDevice: Bool
            let lock = NSLock()
            var fullRows = 0, argmaxRows = 0, mixedSteps = 0, stepsWithEveryKind = 0
            var draws: [DeviceDraw] = []
            init(_ base: CPUBackend, draws: Bool = false) {
                self.base = base
                drawsOnDevice = draws
            }
            var config: ModelConfig { base.config }
            func forward(_ batch: [SequenceStep]) throws -> [Float] { base.forward(batch) }
            func forward<R>(_ batch: [SequenceStep], outputs: [RowOutput], _ body: ([Int], UnsafeMutableBufferPointer<Float>) throws -> R) throws -> R {
                let drawn = outputs.compactMap { output -> DeviceDraw? in if case .draw(let d) = output { d } else { nil } }
                lock.withLock {
                    fullRows += outputs.count { $0 == .logits }
                    argmaxRows += outputs.count { $0 == .argmax }
                    draws += drawn
                    if outputs.contains(.logits) && outputs.contains(.argmax) { mixedSteps += 1 }
                    if outputs.contains(.logits) && outputs.contains(.argmax) && !drawn.isEmpty { stepsWithEveryKind += 1 }
                }
                let onHost = outputs.map { output -> RowOutput in if case .draw = output { .argmax } else { output } }
                return try base.forward(batch, outputs: onHost) { tokens, logits in
                    var tokens = tokens, k = 0
                    for output in outputs where !output.needsLogits {
                        if case .draw(let d) = output { tokens[k] = Int(d.uniform * 1000) }
                        k += 1
                    }
                    return try body(tokens, logits)
                }
            }
            func exportKV(blockTable: [Int], range: Range<Int>, into buffer: UnsafeMutablePointer<Float>) throws {
                base.exportKV(blockTable: blockTable, range: range, into: buffer)
            }
            func importKV(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int, bufferOffset: Int) throws {
                base.importKV(blockTable: blockTable, range: range, from: buffer, bufferTokens: bufferTokens, bufferOffset: bufferOffset)
            }
            var counts: (Int, Int) { lock.withLock { (fullRows, argmaxRows) } }
        }

        /// Request parameters: `maxTokens` tokens, EOS ignored.
        static func params(temperature: Float, topP: Float = 1, topK: Int = 0, minP: Float = 0, seed: UInt64? = nil,
                           maxTokens: Int) -> SamplingParams {
            var params = SamplingParams()
            (params.temperature, params.topP, params.topK, params.minP, params.seed) = (temperature, topP, topK, minP, seed)
            params.maxTokens = maxTokens
            params.ignoreEOS = true
            return params
        }

        /// A started engine over a CountingBackend of the default model (`draws`: it samples on its "device").
        static func countingEngine(draws: Bool = false) -> (EngineCore, CountingBackend) {
            let config = EngineConfig(maxModelLen: 1024, numBlocks: 256)
            let backend = CountingBackend(CPUBackend(model: Self.model, blockSize: config.blockSize, numBlocks: config.numBlocks), draws: draws)
            let engine = EngineCore(backend: backend, config: config, metricsFactory: MetricsEndpoint().factory, logger: Logger(label: "test"))
            engine.start()
            return (engine, backend)
        }

        static func tokens(_ stream: AsyncStream<EngineEvent>) async -> [Int] {
            var tokens: [Int] = []
            for await event in stream { if case .token(let t) = event { tokens.append(t.token) } }
            return tokens
        }

        @Test("plain greedy rows come back as argmaxes, rows with logprobs or sampling as logits, both in one step: the same tokens as alone")
        func greedyAsksForArgmaxOnly() async throws {
            let (engine, backend) = Self.countingEngine()
            defer { engine.shutdown() }
            let prompt = Self.prompts(1, maxLength: 30)[0]
            let plain = try await Self.run(engine, "plain", prompt, maxTokens: 24)
            #expect(backend.counts == (0, 24))
            var params = SamplingParams()
            params.temperature = 0
            params.maxTokens = 6
            params.ignoreEOS = true
            params.logprobs = 0
            var tokens: [Int] = []
            for await event in try engine.submit(EngineRequest(id: "logprobs", prompt: prompt, params: params)) {
                if case .token(let t) = event {
                    tokens.append(t.token)
                    #expect(t.logprob != nil)
                }
            }
            #expect(tokens == Array(plain.tokens.prefix(6)))
            #expect(backend.counts == (6, 24))
            // A seeded sampled request alone, then beside a greedy one: steps with both kinds of rows.
            let sampledParams = Self.params(temperature: 0.8, topP: 0.95, seed: 17, maxTokens: 24)
            let alone = await Self.tokens(try engine.submit(EngineRequest(id: "sampled", prompt: prompt, params: sampledParams)))
            let greedyParams = Self.params(temperature: 0, maxTokens: 24)
            let sampledStream = try engine.submit(EngineRequest(id: "sampled-2", prompt: prompt, params: sampledParams))
            let greedyStream = try engine.submit(EngineRequest(id: "greedy-2", prompt: prompt, params: greedyParams))
            async let together = Self.tokens(sampledStream)
            let greedy = await Self.tokens(greedyStream)
            #expect(await together == alone)
            #expect(greedy == plain.tokens)
            #expect(alone != plain.tokens)
            #expect(backend.lock.withLock { backend.mixedSteps } > 0)
        }

        @Test("sampled rows without logprobs are drawn on a device that can, with the request's parameters and random stream; greedy, drawn and host-sampled rows in one step each get their own tokens")
        func deviceDraws() async throws {
            let (engine, backend) = Self.countingEngine(draws: true)
            defer { engine.shutdown() }
            let prompt = Self.prompts(1, maxLength: 30)[0]
            let drawn = Self.params(temperature: 0.8, topP: 0.95, topK: 40, minP: 0.05, seed: 17, maxTokens: 8)
            let drawnAlone = await Self.tokens(try engine.submit(EngineRequest(id: "drawn", prompt: prompt, params: drawn)))
            var random = RequestRandom(seed: 17)
            #expect(drawnAlone == (0..<8).map { _ in Int(random.uniform() * 1000) })
            let draws = backend.lock.withLock { backend.draws }
            #expect(draws.count == 8)
            #expect(draws.allSatisfy { $0.inverseTemperature == 1 / Float(0.8) && $0.topK == 40 && $0.topP == 0.95 && $0.minP == 0.05 })
            #expect(backend.counts == (0, 0))
            var hostSampled = drawn  // log-probabilities need the logits on the host
            hostSampled.logprobs = 0
            let hostAlone = await Self.tokens(try engine.submit(EngineRequest(id: "host", prompt: prompt, params: hostSampled)))
            #expect(backend.counts == (8, 0))
            let greedy = Self.params(temperature: 0, maxTokens: 8)
            let greedyAlone = await Self.tokens(try engine.submit(EngineRequest(id: "greedy", prompt: prompt, params: greedy)))
            let streams = try [("drawn-2", drawn), ("host-2", hostSampled), ("greedy-2", greedy)].map { id, params in
                try engine.submit(EngineRequest(id: id, prompt: prompt, params: params))
            }
            async let drawnTogether = Self.tokens(streams[0])
            async let hostTogether = Self.tokens(streams[1])
            let greedyTogether = await Self.tokens(streams[2])
            #expect(await drawnTogether == drawnAlone)
            #expect(await hostTogether == hostAlone)
            #expect(greedyTogether == greedyAlone)
            #expect(backend.lock.withLock { backend.stepsWithEveryKind } > 0)
        }

        @Test("rows with penalties are drawn on a device that can, with the request's prompt and output so far; a greedy one as top-k 1 at temperature 1, taking no uniform; rows with logprobs stay on the host")
        func deviceDrawsWithPenalties() async throws {
            let (engine, backend) = Self.countingEngine(draws: true)
            defer { engine.shutdown() }
            let prompt = Self.prompts(1, maxLength: 30)[0]
            var sampled = Self.params(temperature: 0.9, topP: 0.9, seed: 5, maxTokens: 6)
            (sampled.repetitionPenalty, sampled.frequencyPenalty, sampled.presencePenalty) = (1.2, 0.3, 0.1)
            let tokens = await Self.tokens(try engine.submit(EngineRequest(id: "penalized", prompt: prompt, params: sampled)))
            var random = RequestRandom(seed: 5)
            #expect(tokens == (0..<6).map { _ in Int(random.uniform() * 1000) })
            var draws = backend.lock.withLock { backend.draws }
            #expect(draws.count == 6)
            for (i, d) in draws.enumerated() {
                #expect(d.penalties == DevicePenalties(repetition: 1.2, frequency: 0.3, presence: 0.1, prompt: prompt, output: Array(tokens.prefix(i))))
                #expect(d.inverseTemperature == 1 / Float(0.9) && d.topP == 0.9)
            }
            var greedy = Self.params(temperature: 0, maxTokens: 4)
            greedy.repetitionPenalty = 1.3
            _ = await Self.tokens(try engine.submit(EngineRequest(id: "greedy-penalized", prompt: prompt, params: greedy)))
            draws = backend.lock.withLock { Array(backend.draws.dropFirst(6)) }
            #expect(draws.count == 4)
            #expect(draws.allSatisfy { $0.topK == 1 && $0.inverseTemperature == 1 && $0.uniform == 0 && $0.penalties?.repetition == 1.3 })
            #expect(backend.counts == (0, 0))
            var withLogprobs = sampled
            withLogprobs.logprobs = 2
            _ = await Self.tokens(try engine.submit(EngineRequest(id: "logprobs", prompt: prompt, params: withLogprobs)))
            #expect(backend.counts == (6, 0))
        }

        @Test("six seeded sampled requests at once (rows sampled on several threads) each give their tokens alone")
        func sampledRowsInParallel() async throws {
            let (engine, _) = Self.engine()
            defer { engine.shutdown() }
            let prompts = Self.prompts(6, maxLength: 40)
            func request(_ i: Int) -> EngineRequest {
                var params = SamplingParams()
                params.temperature = [1, 0.7, 1.3][i % 3]
                params.topP = [1, 0.9, 0.95][i % 3]
                params.topK = i == 4 ? 40 : 0
                params.minP = i == 5 ? 0.05 : 0
                params.seed = UInt64(100 + i)
                params.maxTokens = 20
                params.ignoreEOS = true
                return EngineRequest(id: "r\(i)", prompt: prompts[i], params: params)
            }
            var alone: [[Int]] = []
            for i in 0..<6 { alone.append(await Self.tokens(try engine.submit(request(i)))) }
            let streams = try (0..<6).map { try engine.submit(request($0)) }
            var together: [[Int]] = []
            for stream in streams { together.append(await Self.tokens(stream)) }
            #expect(together == alone)
            #expect(Set(alone).count == 6)
        }

        @Test("aborting a running request frees its blocks")
        func abortFreesBlocks() async throws {
            let (engine, metrics) = Self.engine()
            var params = SamplingParams()
            params.temperature = 0
            params.maxTokens = 500
            params.ignoreEOS = true
            var seen = 0
            for await event in try engine.submit(EngineRequest(id: "long", prompt: Self.prompts(1, maxLength: 40)[0], params: params)) {
                if case .token = event { seen += 1 }
                if seen == 3 { engine.abort("long") }
                if case .finished(let reason, _) = event { #expect(reason == .abort) }
            }
            #expect(seen < 500)
            try await Task.sleep(for: .milliseconds(100))
            #expect(metrics.render().contains("vllm:kv_cache_usage_perc 0.0"))
            #expect(engine.load == 0)
            engine.shutdown()
        }
    }
}
