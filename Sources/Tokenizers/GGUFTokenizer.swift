import ModelFiles

extension BPETokenizer {
    /// Builds the tokenizer stored in a GGUF's `tokenizer.ggml.*` metadata: `gpt2` (byte-level BPE with its `pre`
    /// variant) or `llama` (SentencePiece BPE: merges follow the token scores, byte fallback).
    public convenience init(gguf: GGUFFile) throws(ModelFileError) {
        let model = try gguf.require("tokenizer.ggml.model") { $0.stringValue }
        let tokens = try gguf.require("tokenizer.ggml.tokens") { $0.arrayValue?.compactMap(\.stringValue) }
        let types = gguf.metadata["tokenizer.ggml.token_type"]?.arrayValue?.compactMap(\.intValue) ?? []
        // Token types: 2 = unknown, 3 = control, 4 = user-defined: matched as whole tokens in text (as llama.cpp's
        // special-token partition and HF's added tokens do).
        let specials = Set(types.enumerated().filter { [2, 3, 4].contains($0.element) }.map(\.offset))
        let eos = gguf.int("tokenizer.ggml.eos_token_id")
        let family: Family, pre: PreTokenizer, merges: [Merge]
        switch model {
        case "gpt2":
            let preName = gguf.string("tokenizer.ggml.pre") ?? "default"
            guard let p = PreTokenizer(ggufName: preName) else {
                throw .unsupported(path: gguf.path, field: "tokenizer.ggml.pre", "'\(preName)'")
            }
            let spelled = try gguf.require("tokenizer.ggml.merges") { $0.arrayValue?.compactMap(\.stringValue) }
            var list: [Merge] = []
            for (i, m) in spelled.enumerated() {
                guard let merge = Merge(spelled: m, rank: i) else {
                    throw .malformed(path: gguf.path, field: "tokenizer.ggml.merges[\(i)]", "'\(m)' is not two tokens")
                }
                list.append(merge)
            }
            (family, pre, merges) = (.byteLevel(nfc: p == .qwen2), p, list)
        case "llama":
            let scores = try gguf.require("tokenizer.ggml.scores") { $0.arrayValue?.compactMap(\.doubleValue) }
            guard scores.count == tokens.count, types.count == tokens.count else {
                throw .malformed(path: gguf.path, field: "tokenizer.ggml.scores", "\(scores.count) scores and \(types.count) types for \(tokens.count) tokens")
            }
            let unknown = gguf.int("tokenizer.ggml.unknown_token_id") ?? types.firstIndex(of: 2)
            (family, pre, merges) = (.sentencePiece(unknownTokenID: unknown), .gpt2, Self.mergesFromScores(tokens, scores, types))
        default:
            throw .unsupported(path: gguf.path, field: "tokenizer.ggml.model", "'\(model)' (gpt2 byte-level BPE and llama SentencePiece are supported)")
        }
        let spec = Specification(
            tokens: tokens, merges: merges, specialTokenIDs: specials, family: family, preTokenizer: pre,
            bosTokenID: gguf.int("tokenizer.ggml.bos_token_id"), eosTokenIDs: eos.map { [$0] } ?? [],
            addBOS: gguf.metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? (model == "llama"))
        do {
            try self.init(spec)
        } catch {
            throw .malformed(path: gguf.path, field: "tokenizer.ggml", "\(error)")
        }
    }

    /// SentencePiece merges two adjacent pieces when their concatenation is a normal token, highest score first
    /// (llama.cpp's tokenizer): every split of every normal token into two tokens is a merge rule, ranked by the
    /// merged token's score.
    static func mergesFromScores(_ tokens: [String], _ scores: [Double], _ types: [Int]) -> [Merge] {
        var idOf: [String: Int] = [:]
        for (id, t) in tokens.enumerated() where idOf[t] == nil { idOf[t] = id }
        let order = tokens.indices.filter { types[$0] == 1 || types[$0] == 4 }.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        var merges: [Merge] = []
        for (rank, id) in order.enumerated() {
            let scalars = Array(tokens[id].unicodeScalars)
            guard scalars.count > 1 else { continue }
            for cut in 1..<scalars.count {
                let left = String(String.UnicodeScalarView(scalars[..<cut])), right = String(String.UnicodeScalarView(scalars[cut...]))
                if let l = idOf[left], let r = idOf[right], [1, 4, 6].contains(types[l]), [1, 4, 6].contains(types[r]) {
                    merges.append(Merge(left, right, rank: rank))
                }
            }
        }
        return merges
    }
}
