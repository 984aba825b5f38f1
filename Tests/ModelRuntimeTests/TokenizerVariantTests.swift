import Foundation
import ModelFiles
import Testing
import Tokenizers

/// Llama-3-style and Qwen2-style byte-level BPE and Llama-2-style SentencePiece BPE, each trained small by
/// scripts/fixtures/gen_tokenizer_variants.py, loaded from tokenizer.json and from the GGUF form, against the ids
/// Hugging Face `tokenizers` gives for ~350 strings; the SentencePiece vocabulary also with a Metaspace pre-tokenizer
/// instead of the Prepend + Replace normalizers (newer conversions; tokenizer.json only).
@Suite("Tokenizer families: llama-bpe, qwen2, SentencePiece (tokenizer.json and GGUF) vs HF tokenizers")
struct TokenizerVariantTests {
    struct Golden: Decodable { var family: String; var texts: [String]; var ids: [[Int]]; var decoded: [String] }

    static func golden(_ family: String) throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: TestData.fixture("tokenizer/variants/\(family)/golden.json")))
    }

    static func tokenizers(_ family: String) throws -> [(String, BPETokenizer)] {
        let directory = TestData.fixture("tokenizer/variants/\(family)").path
        let hf = ("tokenizer.json", try BPETokenizer(huggingFaceDirectory: directory))
        guard !family.contains("metaspace") else { return [hf] }  // a GGUF says add_space_prefix instead
        return [hf, ("GGUF", try BPETokenizer(gguf: GGUFFile(path: directory + "/vocab.gguf")))]
    }

    @Test("every string encodes to HF's ids and decodes to HF's text",
          arguments: ["llama-bpe", "qwen2", "spm", "spm-metaspace", "spm-metaspace-split"])
    func encodeDecode(_ family: String) throws {
        let golden = try Self.golden(family)
        #expect(golden.texts.count >= 300)
        for (source, tokenizer) in try Self.tokenizers(family) {
            var mismatches = 0
            for (k, text) in golden.texts.enumerated() {
                let ids = tokenizer.encode(text)
                if ids != golden.ids[k] {
                    mismatches += 1
                    if mismatches <= 5 { Issue.record("\(source) \(text.debugDescription): \(ids) != \(golden.ids[k])") }
                }
                #expect(tokenizer.decode(golden.ids[k]) == golden.decoded[k], "\(source) decode of \(text.debugDescription)")
            }
            #expect(mismatches == 0, "\(family) from \(source): \(mismatches) of \(golden.texts.count) strings differ")
        }
    }

    @Test("the families are told apart: pre-tokenizers and normalization differ where they should")
    func familiesDiffer() throws {
        let llama = try Self.tokenizers("llama-bpe")[0].1, qwen = try Self.tokenizers("qwen2")[0].1
        #expect(llama.preTokenizer == .llama3 && qwen.preTokenizer == .qwen2)
        #expect(qwen.family == .byteLevel(nfc: true) && llama.family == .byteLevel(nfc: false))
        // Digits: groups of up to three for Llama 3, one by one for Qwen2.
        #expect(PreTokenizer.llama3.split("12345 x").map(String.init) == ["123", "45", " x"])
        #expect(PreTokenizer.qwen2.split("123").map(String.init) == ["1", "2", "3"])
        // NFC: a decomposed é encodes like the precomposed one for Qwen2 only.
        #expect(qwen.encode("cafe\u{301}") == qwen.encode("caf\u{e9}"))
        #expect(llama.encode("cafe\u{301}") != llama.encode("caf\u{e9}"))
        // SentencePiece: a space prefix is added, a character outside the vocabulary falls back to its bytes.
        let spm = try Self.tokenizers("spm")[0].1
        let snowman = spm.encode("☃")
        #expect(snowman.count == 4 && spm.decode(snowman) == "☃")
        #expect(spm.decode(spm.encode("hello world")) == "hello world")
        // Metaspace: read with its scheme; unlike the Prepend normalizer it adds no second ▁ before a leading space,
        // and with `first` none after a special token.
        let first = try Self.tokenizers("spm-metaspace")[0].1, always = try Self.tokenizers("spm-metaspace-split")[0].1
        #expect(spm.family == .sentencePiece(unknownTokenID: 0, prefix: .everySegment))
        #expect(first.family == .sentencePiece(unknownTokenID: 0, prefix: .metaspace(.first, split: false)))
        #expect(always.family == .sentencePiece(unknownTokenID: 0, prefix: .metaspace(.always, split: true)))
        #expect(first.encode(" hello") == first.encode("hello") && spm.encode(" hello") != spm.encode("hello"))
        #expect(first.encode("<s>hello") != always.encode("<s>hello"))
    }
}
