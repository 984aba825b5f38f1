import Foundation
import ModelFiles
import Testing
@testable import Tokenizers

@Suite("byte-level BPE tokenizer (SmolLM2)")
struct TokenizerTests {
    static let tokenizer: BPETokenizer = {
        try! BPETokenizer(gguf: GGUFFile(path: TestData.defaultModelPath))
    }()

    struct GoldenCase: Decodable, Sendable {
        var text: String
        var ids: [Int]
        var ids_with_special_parsing: [Int]
        var ids_smollm_pretokenizer: [Int]
    }

    static let cases: [GoldenCase] = {
        struct File: Decodable { var cases: [GoldenCase] }
        let data = try! Data(contentsOf: TestData.fixture("tokenizer/smollm2-golden.json"))
        return try! JSONDecoder().decode(File.self, from: data).cases
    }()

    @Test("every golden string encodes to SmolLM2's reference ids (digits split, special text kept as text)")
    func goldenPlain() {
        var mismatches = 0
        for c in Self.cases {
            let text = c.text
            let expected = c.ids_smollm_pretokenizer
            let got = Self.tokenizer.encode(text, parseSpecial: false)
            if got != expected {
                mismatches += 1
                Issue.record("\(text.debugDescription): got \(got), want \(expected)")
            }
        }
        #expect(Self.cases.count >= 200)
        #expect(mismatches == 0)
    }

    @Test("special tokens typed in text are parsed like HF does by default")
    func goldenSpecialParsing() {
        for c in Self.cases where c.ids == c.ids_smollm_pretokenizer {
            #expect(Self.tokenizer.encode(c.text, parseSpecial: true) == c.ids_with_special_parsing, "\(c.text.debugDescription)")
        }
    }

    @Test("decoding round-trips every golden string")
    func roundTrip() {
        for c in Self.cases {
            #expect(Self.tokenizer.decode(Self.tokenizer.encode(c.text, parseSpecial: false)) == c.text)
        }
    }

    @Test("the GGUF's special tokens and flags are read")
    func specials() {
        let t = Self.tokenizer
        #expect(t.bosTokenID == 1 && t.eosTokenIDs == [2] && !t.addBOS)
        #expect(t.specialTokenIDs == Set(0...16))
        #expect(t.vocabulary.count == 49152)
        #expect(t.encode("<|im_start|>user\nhi<|im_end|>") == [1, 4093, 198, 6004, 2])
    }

    @Test("the streaming detokenizer never emits half a UTF-8 character")
    func streamingUTF8() {
        let text = "Grüße 👩‍💻 日本語 ½"
        let ids = Self.tokenizer.encode(text, parseSpecial: false)
        var detok = StreamingDetokenizer(tokenizer: Self.tokenizer)
        var out = ""
        for id in ids {
            let piece = detok.append(id)
            #expect(!piece.contains("\u{FFFD}"), "id \(id) produced a broken character")
            out += piece
        }
        out += detok.finish()
        #expect(out == text)
    }

    @Test("UTF-8 boundary detection", arguments: [
        ([0x61], 1), ([0xC3], 0), ([0xC3, 0xBC], 2), ([0x61, 0xE6, 0x97], 1), ([0xF0, 0x9F, 0x91], 0), ([0xF0, 0x9F, 0x91, 0xA9], 4),
    ])
    func boundary(bytes: [UInt8], complete: Int) {
        #expect(StreamingDetokenizer.completePrefixLength(bytes) == complete)
    }
}
