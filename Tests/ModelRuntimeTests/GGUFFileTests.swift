import Foundation
import ModelFiles
import Testing

@Suite("GGUF reader")
struct GGUFFileTests {
    @Test("the default model's header, hyperparameters and tensor directory match the gguf package's reading")
    func defaultModel() throws {
        let gguf = try GGUFFile(path: TestData.defaultModelPath)
        let expected = try TestData.json("tokenizer/smollm2-golden.json")["gguf"] as! [String: Any]
        let header = expected["header"] as! [String: Any]
        #expect(Int(gguf.version) == header["version"] as? Int)
        #expect(gguf.tensors.count == header["tensor_count"] as? Int)
        #expect(gguf.string("general.architecture") == "llama")
        #expect(gguf.int("llama.block_count") == 30)
        #expect(gguf.int("llama.embedding_length") == 576)
        #expect(gguf.int("llama.attention.head_count_kv") == 3)
        #expect(gguf.double("llama.rope.freq_base") == 100000)
        let q = try #require(gguf.tensors["blk.0.attn_q.weight"])
        #expect(q.type == .q4_1 && q.dimensions == [576, 576] && q.byteCount == 207_360)
        let embd = try #require(gguf.tensors["token_embd.weight"])
        #expect(embd.type == .q8_0 && embd.dimensions == [576, 49152] && embd.offset == 1_785_664)
        #expect(gguf.tensors["output.weight"] == nil)
        let types = Dictionary(grouping: gguf.tensors.values, by: \.type).mapValues(\.count)
        #expect(types == [.q4_1: 210, .f32: 61, .q8_0: 1])
        #expect(gguf.bytes(of: embd).count == embd.byteCount)
    }

    /// A small valid file built byte by byte, then damaged in each way a hostile file could be.
    static func syntheticFile(tensorDims: [UInt64] = [32, 2], tensorType: UInt32 = 0, tensorOffset: UInt64 = 0,
                              dataBytes: Int = 256, magic: [UInt8] = Array("GGUF".utf8), stringLength: UInt64? = nil,
                              arrayCount: UInt64? = nil) -> [UInt8] {
        var b: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        func str(_ s: String, length: UInt64? = nil) { u64(length ?? UInt64(s.utf8.count)); b += Array(s.utf8) }
        b += magic
        u32(3); u64(1); u64(2)
        str("general.architecture"); u32(8); str("llama", length: stringLength)
        str("tokenizer.ggml.tokens"); u32(9); u32(8); u64(arrayCount ?? 2); str("a"); str("b")
        str("w"); u32(UInt32(tensorDims.count)); tensorDims.forEach(u64); u32(tensorType); u64(tensorOffset)
        while b.count % 32 != 0 { b.append(0) }
        b += [UInt8](repeating: 0, count: dataBytes)
        return b
    }

    private func load(_ bytes: [UInt8]) throws -> GGUFFile {
        let path = NSTemporaryDirectory() + "swiftwise-\(UUID().uuidString).gguf"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return try GGUFFile(path: path)
    }

    @Test("a well-formed synthetic file loads")
    func synthetic() throws {
        let gguf = try load(Self.syntheticFile())
        #expect(gguf.string("general.architecture") == "llama")
        #expect(gguf.tensors["w"]?.byteCount == 256)
        #expect(gguf.metadata["tokenizer.ggml.tokens"] == .array([.string("a"), .string("b")]))
    }

    @Test("hostile or damaged files give an error naming the field, never a crash", arguments: [
        ("bad magic", syntheticFile(magic: Array("GGML".utf8)), "magic"),
        ("string longer than the file", syntheticFile(stringLength: 1 << 40), "general.architecture"),
        ("array count larger than the file", syntheticFile(arrayCount: 1 << 50), "tokenizer.ggml.tokens"),
        ("tensor data past the end", syntheticFile(dataBytes: 100), "w offset"),
        ("offset past the end", syntheticFile(tensorOffset: 1 << 40), "w offset"),
        ("absurd dimensions", syntheticFile(tensorDims: [1 << 40, 1 << 40]), "w dimension 0"),
        ("unknown tensor type", syntheticFile(tensorType: 99), "w type"),
        ("partial quantized block", syntheticFile(tensorDims: [33], tensorType: 3), "w dimensions"),
        ("truncated in a value", Array(syntheticFile().prefix(66)), "general.architecture"),
        ("truncated header", Array(syntheticFile().prefix(30)), "metadata_kv_count"),
    ])
    func hostile(name: String, bytes: [UInt8], field: String) {
        #expect { try load(bytes) } throws: { error in
            let text = "\(error)"
            return text.contains(".gguf") && text.contains(field)
        }
    }

    @Test("a missing file is a clear error")
    func missing() {
        #expect(throws: ModelFileError.self) { try GGUFFile(path: "/nonexistent/model.gguf") }
    }
}
