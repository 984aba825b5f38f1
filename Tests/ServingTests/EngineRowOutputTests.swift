@testable import Engine
import Foundation
import Logging
import Models
import ServiceKit
import Testing

/// What the engine asks of a backend for each sampled row (argmax, logits, a device draw with or without penalties
/// and log-probabilities), through a backend that counts the kinds and stands in for a device.
extension Serving.EngineTests {
    /// Counts the logits rows the engine asks for by kind. With `draws`, it samples on its "device": a drawn row's
    /// token is ⌊uniform · 1000⌋, which shows the uniform the engine handed over.
    final class CountingBackend: ForwardBackend, @unchecked Sendable {
        let base: CPUBackend
        let drawsOnDevice: Bool, drawsLogprobsOnDevice: Bool
        let lock = NSLock()
        var fullRows = 0, argmaxRows = 0, mixedSteps = 0, stepsWithEveryKind = 0
        var draws: [DeviceDraw] = []
        /// With `logprobs`, a drawn row's log-probabilities are made up: -1 - the token / 1000 for the drawn token,
        /// and n tokens 0, 1, ... at -2, -3, ...
        init(_ base: CPUBackend, draws: Bool = false, logprobs: Bool = false) {
            self.base = base
            drawsOnDevice = draws
            drawsLogprobsOnDevice = logprobs
        }
        var config: ModelConfig { base.config }
        func forward(_ batch: [SequenceStep]) throws -> [Float] { base.forward(batch) }
        func forward<R>(_ batch: [SequenceStep], outputs: [RowOutput],
                        _ body: ([Int], [DrawnLogprobs?], UnsafeMutableBufferPointer<Float>) throws -> R) throws -> R {
            let drawn = outputs.compactMap { output -> DeviceDraw? in if case .draw(let d) = output { d } else { nil } }
            lock.withLock {
                fullRows += outputs.count { $0 == .logits }
                argmaxRows += outputs.count { $0 == .argmax }
                draws += drawn
                if outputs.contains(.logits) && outputs.contains(.argmax) { mixedSteps += 1 }
                if outputs.contains(.logits) && outputs.contains(.argmax) && !drawn.isEmpty { stepsWithEveryKind += 1 }
            }
            let onHost = outputs.map { output -> RowOutput in if case .draw = output { .argmax } else { output } }
            return try base.forward(batch, outputs: onHost) { tokens, logprobs, logits in
                var tokens = tokens, logprobs = logprobs, k = 0
                for output in outputs where !output.needsLogits {
                    if case .draw(let d) = output {
                        tokens[k] = Int(d.uniform * 1000)
                        if let n = d.logprobs {
                            logprobs[k] = DrawnLogprobs(logprob: -1 - Float(tokens[k]) / 1000, top: (0..<n).map { ($0, Float(-2 - $0)) })
                        }
                    }
                    k += 1
                }
                return try body(tokens, logprobs, logits)
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

    /// A started engine over a CountingBackend of the default model (`draws`: it samples on its "device";
    /// `logprobs`: with log-probabilities).
    static func countingEngine(draws: Bool = false, logprobs: Bool = false) -> (EngineCore, CountingBackend) {
        let config = EngineConfig(maxModelLen: 1024, numBlocks: 256)
        let backend = CountingBackend(CPUBackend(model: Self.model, blockSize: config.blockSize, numBlocks: config.numBlocks),
                                      draws: draws, logprobs: logprobs)
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
            #expect(d.penalties == Penalties(repetition: 1.2, frequency: 0.3, presence: 0.1, prompt: prompt, output: Array(tokens.prefix(i))))
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

    @Test("on a device that reports log-probabilities, rows with logprobs (up to 20 top) are drawn there and their log-probabilities reach the events; more than 20 go to the host")
    func deviceLogprobs() async throws {
        let (engine, backend) = Self.countingEngine(draws: true, logprobs: true)
        defer { engine.shutdown() }
        let prompt = Self.prompts(1, maxLength: 30)[0]
        var params = Self.params(temperature: 0.9, seed: 8, maxTokens: 4)
        params.logprobs = 3
        var events: [SampledToken] = []
        for await event in try engine.submit(EngineRequest(id: "lp", prompt: prompt, params: params)) {
            if case .token(let t) = event { events.append(t) }
        }
        #expect(events.count == 4)
        for t in events {
            #expect(t.logprob == -1 - Float(t.token) / 1000)
            #expect(t.top.map(\.token) == [0, 1, 2] && t.top.map(\.logprob) == [-2, -3, -4])
        }
        #expect(backend.lock.withLock { backend.draws.allSatisfy { $0.logprobs == 3 } })
        #expect(backend.counts == (0, 0))
        params.logprobs = 21
        _ = await Self.tokens(try engine.submit(EngineRequest(id: "many", prompt: prompt, params: params)))
        #expect(backend.counts == (4, 0))
    }
}
