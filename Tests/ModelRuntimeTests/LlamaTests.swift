import Foundation
import ModelFiles
import Models
import Testing
import Tokenizers

@Suite("Llama forward pass on the default model", .timeLimit(.minutes(5)))
struct LlamaTests {
    static let gguf = try! GGUFFile(path: TestData.defaultModelPath)
    static let model = try! LlamaModel(gguf: gguf)
    static let tokenizer = try! BPETokenizer(gguf: gguf)

    static func greedy(_ ids: [Int], steps: Int) -> [Int] { model.greedy(ids, steps: steps) }

    @Test("greedy 'The capital of France is' continues with ' Paris'")
    func capitalOfFrance() {
        let ids = Self.tokenizer.encode("The capital of France is", parseSpecial: false)
        let text = Self.tokenizer.decode(Self.greedy(ids, steps: 3))
        #expect(text.hasPrefix(" Paris"), "\(text.debugDescription)")
    }

    struct Reference: Decodable {
        struct TeacherForced: Decodable { var ids: [Int]; var argmax_ids: [Int]; var max_logit: [Double] }
        struct Greedy: Decodable { var prompt_ids: [Int]; var new_ids_ignore_eos: [Int] }
        var teacher_forced: TeacherForced
        var greedy: Greedy
    }

    static let reference: Reference = {
        let data = try! Data(contentsOf: TestData.fixture("reference/smollm2-q4_1.json"))
        return try! JSONDecoder().decode(Reference.self, from: data)
    }()

    @Test("teacher-forced top-1 agreement with transformers on the dequantized model is at least 99% over 256 tokens")
    func teacherForcedAgreement() {
        let ref = Self.reference.teacher_forced
        let cache = KVCache(config: Self.model.config, capacity: ref.ids.count)
        let logits = Self.model.forward(ref.ids, cache: cache, allLogits: true)
        let vocab = Self.model.config.vocabSize
        var agree = 0
        var maxLogitError = 0.0
        for t in 0..<ref.argmax_ids.count {
            let row = logits[t * vocab..<(t + 1) * vocab]
            let best = row.indices.max { row[$0] < row[$1] }! - t * vocab
            if best == ref.argmax_ids[t] { agree += 1 }
            maxLogitError = max(maxLogitError, abs(Double(row.max()!) - ref.max_logit[t]) / max(1, abs(ref.max_logit[t])))
        }
        let rate = Double(agree) / Double(ref.argmax_ids.count)
        #expect(rate >= 0.99, "agreement \(agree)/\(ref.argmax_ids.count)")
        #expect(maxLogitError < 1e-3, "max relative error of the top logit \(maxLogitError)")
    }

    @Test("greedy continuation equals transformers' token for token")
    func greedyMatchesTransformers() {
        let ref = Self.reference.greedy
        #expect(Self.greedy(ref.prompt_ids, steps: ref.new_ids_ignore_eos.count) == ref.new_ids_ignore_eos)
    }

    @Test("the config is read from the GGUF")
    func config() {
        let c = Self.model.config
        #expect(c.layers == 30 && c.hiddenSize == 576 && c.heads == 9 && c.kvHeads == 3 && c.headDim == 64)
        #expect(c.ffnSize == 1536 && c.vocabSize == 49152 && c.ropeTheta == 100_000)
    }

    @Test("batch invariance: prefill in one batch gives the same logits as token by token")
    func batchInvariance() {
        let ids = Self.tokenizer.encode("Batch invariance means the same numbers whatever the batch.", parseSpecial: false)
        let all = KVCache(config: Self.model.config, capacity: ids.count)
        let batched = Self.model.forward(ids, cache: all, allLogits: true)
        let one = KVCache(config: Self.model.config, capacity: ids.count)
        let vocab = Self.model.config.vocabSize
        for (t, id) in ids.enumerated() {
            let logits = Self.model.forward([id], cache: one)
            #expect(Array(batched[t * vocab..<(t + 1) * vocab]) == logits, "position \(t)")
        }
    }
}
