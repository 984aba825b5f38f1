@testable import Engine
import Foundation
import Logging
import Models
import ServiceKit
import Testing

/// `maxPrefillTokensWhileDecoding`: a step that carries a decode row computes at most that many prompt tokens, a step
/// without one takes the whole budget, and the chunking changes no result.
extension Serving.EngineTests {
    /// Records each step's rows as token counts.
    final class StepRecorder: ForwardBackend, @unchecked Sendable {
        let base: CPUBackend
        let lock = NSLock()
        var steps: [[Int]] = []
        init(_ base: CPUBackend) { self.base = base }
        var config: ModelConfig { base.config }
        var drawsOnDevice: Bool { false }
        var drawsLogprobsOnDevice: Bool { false }
        func forward(_ batch: [SequenceStep]) throws -> [Float] { base.forward(batch) }
        func forward<R>(_ batch: [SequenceStep], outputs: [RowOutput],
                        _ body: ([Int], [DrawnLogprobs?], UnsafeMutableBufferPointer<Float>) throws -> R) throws -> R {
            lock.withLock { steps.append(batch.map(\.tokens.count)) }
            return try base.forward(batch, outputs: outputs, body)
        }
        func exportKV(blockTable: [Int], range: Range<Int>, into buffer: UnsafeMutablePointer<Float>) throws {
            base.exportKV(blockTable: blockTable, range: range, into: buffer)
        }
        func importKV(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int, bufferOffset: Int) throws {
            base.importKV(blockTable: blockTable, range: range, from: buffer, bufferTokens: bufferTokens, bufferOffset: bufferOffset)
        }
    }

    @Test("while a sequence decodes, a step computes at most maxPrefillTokensWhileDecoding prompt tokens; results unchanged")
    func promptBudgetWhileDecoding() async throws {
        var config = EngineConfig(maxModelLen: 1024, numBlocks: 256)
        config.maxNumBatchedTokens = 256
        config.maxPrefillTokensWhileDecoding = 16
        config.enablePrefixCaching = false
        let recorder = StepRecorder(CPUBackend(model: Self.model, blockSize: config.blockSize, numBlocks: config.numBlocks))
        let engine = EngineCore(backend: recorder, config: config, metricsFactory: MetricsEndpoint().factory, logger: Logger(label: "test"))
        engine.start()
        defer { engine.shutdown() }
        let text = Self.prompts(8, maxLength: 120).flatMap { $0 }
        let (a, b) = (Array(text.prefix(40)), Array(text.dropFirst(40).prefix(100)))
        #expect(a.count == 40 && b.count == 100)

        var params = SamplingParams()
        params.temperature = 0
        params.maxTokens = 40
        params.ignoreEOS = true
        let stream = try engine.submit(EngineRequest(id: "a", prompt: a, params: params))
        var aTokens: [Int] = []
        var bTask: Task<Result, any Error>?
        for await event in stream {
            if case .token(let t) = event {
                aTokens.append(t.token)
                if aTokens.count == 2 { bTask = Task { try await Self.run(engine, "b", b, maxTokens: 3) } }
            }
        }
        let bResult = try #require(try await bTask?.value)

        let steps = recorder.lock.withLock { recorder.steps }
        #expect(steps.first == [40], "a's prompt alone takes the whole budget: \(steps.prefix(3))")
        let withDecode = steps.filter { $0.contains(1) }
        for rows in withDecode {
            #expect(rows.filter { $0 > 1 }.reduce(0, +) <= 16, "a step with a decode row: \(rows)")
        }
        #expect(withDecode.contains { $0.contains(16) }, "b's prompt in chunks of 16 beside a's decode rows: \(steps)")

        let (alone, _) = Self.engine(prefixCaching: false)
        defer { alone.shutdown() }
        #expect(try await Self.run(alone, "a", a, maxTokens: 40).tokens == aTokens)
        #expect(try await Self.run(alone, "b", b, maxTokens: 3).tokens == bResult.tokens)
    }
}
