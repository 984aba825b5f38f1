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
