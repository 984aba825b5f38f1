import Foundation
import Jinja
import ModelFiles
import Models
import Testing
import Tokenizers

/// Tiny random Llama (llama3 RoPE scaling, untied), Qwen2 (q/k/v biases, tied) and Mistral (sharded safetensors)
/// checkpoints written by scripts/fixtures/gen_tiny_models.py, in Hugging Face and GGUF form, against transformers.
@Suite("Tiny random checkpoints vs transformers (HF folders and GGUF)")
struct TinyModelTests {
    static let names = ["llama", "qwen2", "mistral"]

    struct Reference {
        var promptIDs: [Int]
        var logits: [[Float]]
        var greedy: [Int]
        var texts: [String]
        var textIDs: [[Int]]
        var messages: [[String: String]]
        var rendered: String
    }

    static func directory(_ name: String) -> String { TestData.fixture("tiny/\(name)").path }

    static func reference(_ name: String) throws -> Reference {
        let json = try TestData.json("tiny/\(name)/reference.json")
        let tokenizer = json["tokenizer"] as! [String: Any]
        let chat = json["chat"] as! [String: Any]
        return Reference(
            promptIDs: json["prompt_ids"] as! [Int],
            logits: (json["logits"] as! [[Double]]).map { $0.map(Float.init) },
            greedy: json["greedy_ids"] as! [Int],
            texts: tokenizer["texts"] as! [String], textIDs: tokenizer["ids"] as! [[Int]],
            messages: chat["messages"] as! [[String: String]], rendered: chat["rendered"] as! String)
    }

    /// max |ours − theirs| over max |theirs|, per position; the worst position.
    static func relativeError(_ ours: [Float], _ reference: [[Float]]) -> Float {
        let vocab = reference[0].count
        var worst: Float = 0
        for (t, row) in reference.enumerated() {
            let scale = row.map(abs).max()!
            var diff: Float = 0
            for i in 0..<vocab { diff = max(diff, abs(ours[t * vocab + i] - row[i])) }
            worst = max(worst, diff / scale)
        }
        return worst
    }

    @Test("HF folder (bf16 safetensors): logits within 1e-4 relative of transformers at every position; greedy identical", arguments: names)
    func huggingFaceLogits(name: String) throws {
        let ref = try Self.reference(name)
        let model = try LlamaModel(huggingFace: Self.directory(name))
        let cache = KVCache(config: model.config, capacity: ref.promptIDs.count)
        let logits = model.forward(ref.promptIDs, cache: cache, allLogits: true)
        let error = Self.relativeError(logits, ref.logits)
        #expect(error < 1e-4, "\(name): relative error \(error)")
        #expect(model.greedy(ref.promptIDs, steps: ref.greedy.count) == ref.greedy)
    }

    @Test("GGUF (F16, llama Q/K rows permuted, rope_freqs): same logits and greedy as transformers", arguments: names)
    func ggufLogits(name: String) throws {
        let ref = try Self.reference(name)
        let gguf = try GGUFFile(path: Self.directory(name) + "/\(name).gguf")
        let model = try LlamaModel(gguf: gguf)
        let cache = KVCache(config: model.config, capacity: ref.promptIDs.count)
        let error = Self.relativeError(model.forward(ref.promptIDs, cache: cache, allLogits: true), ref.logits)
        #expect(error < 1e-4, "\(name): relative error \(error)")
        #expect(model.greedy(ref.promptIDs, steps: ref.greedy.count) == ref.greedy)
    }

    @Test("configs: both transformers spellings, GQA, ties, llama3 scaling, eos lists", arguments: names)
    func configs(name: String) throws {
        let hf = try ModelConfig(huggingFace: Self.directory(name) + "/config.json")
        let gguf = try ModelConfig(gguf: GGUFFile(path: Self.directory(name) + "/\(name).gguf"))
        #expect(hf.hiddenSize == 64 && hf.layers == 2 && hf.heads == 4 && hf.kvHeads == 2 && hf.headDim == 16 && hf.vocabSize == 512)
        #expect(gguf.hiddenSize == hf.hiddenSize && gguf.kvHeads == hf.kvHeads && gguf.ffnSize == hf.ffnSize && gguf.rmsEps == hf.rmsEps)
        #expect(hf.tiedEmbeddings == (name == "qwen2"))
        #expect((hf.ropeScaling != nil) == (name == "llama"))
        let tokenizer = try BPETokenizer(huggingFaceDirectory: Self.directory(name))
        #expect(tokenizer.eosTokenIDs == (name == "llama" ? [0, 2] : [2]))
        // The template's `eos_token` is tokenizer_config.json's, not the smallest stop id (llama: 2, not 0).
        #expect(tokenizer.eosTokenID == 2)
        #expect(tokenizer.bosTokenID == 1)
    }

    @Test("tokenizer.json and the GGUF vocabulary encode like HF tokenizers; chat templates render like jinja2", arguments: names)
    func tokenizersAndTemplates(name: String) throws {
        let ref = try Self.reference(name)
        let hf = try BPETokenizer(huggingFaceDirectory: Self.directory(name))
        let gguf = try GGUFFile(path: Self.directory(name) + "/\(name).gguf")
        let fromGGUF = try BPETokenizer(gguf: gguf)
        for (text, ids) in zip(ref.texts, ref.textIDs) {
            #expect(hf.encode(text) == ids, "\(name): \(text)")
            #expect(fromGGUF.encode(text) == ids, "\(name) gguf: \(text)")
            #expect(hf.decode(ids) == text)
        }
        let messages: [Value] = ref.messages.map { m in .object([("role", .string(m["role"]!)), ("content", .string(m["content"]!))]) }
        let context: [String: Value] = ["messages": .array(messages), "add_generation_prompt": .bool(true)]
        let template = try #require(try HFChatTemplate.load(directory: Self.directory(name)))
        #expect(try Template(template).render(context) == ref.rendered)
        #expect(try Template(#require(gguf.string("tokenizer.chat_template"))).render(context) == ref.rendered)
    }

    @Test("a truncated safetensors file and a bad index are clear errors naming the file")
    func hostileSafetensors() throws {
        let dir = NSTemporaryDirectory() + "swiftwise-bad-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = try Data(contentsOf: URL(fileURLWithPath: Self.directory("llama") + "/model.safetensors"))
        try good.prefix(good.count - 100).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        #expect { _ = try SafetensorsCheckpoint(directory: dir) } throws: { "\($0)".contains("model.safetensors") && "\($0)".contains("data_offsets") }
        var huge = good
        huge.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) })
        try huge.write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        #expect { _ = try SafetensorsCheckpoint(directory: dir) } throws: { "\($0)".contains("header length") }
        try Data(#"{"weight_map": {"a": "../../etc/passwd"}}"#.utf8).write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        #expect { _ = try SafetensorsCheckpoint(directory: dir) } throws: { "\($0)".contains("weight_map") }
    }
}
