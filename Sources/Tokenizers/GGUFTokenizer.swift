import ModelFiles

extension BPETokenizer {
    /// Builds the tokenizer stored in a GGUF's `tokenizer.ggml.*` metadata (gpt2-style byte-level BPE).
    public convenience init(gguf: GGUFFile) throws(ModelFileError) {
        let model = try gguf.require("tokenizer.ggml.model") { $0.stringValue }
        guard model == "gpt2" else {
            throw .unsupported(path: gguf.path, field: "tokenizer.ggml.model", "'\(model)' (byte-level BPE 'gpt2' is supported)")
        }
        let preName = gguf.string("tokenizer.ggml.pre") ?? "default"
        guard let pre = PreTokenizer(ggufName: preName) else {
            throw .unsupported(path: gguf.path, field: "tokenizer.ggml.pre", "'\(preName)'")
        }
        let tokens = try gguf.require("tokenizer.ggml.tokens") { $0.arrayValue?.compactMap(\.stringValue) }
        let merges = try gguf.require("tokenizer.ggml.merges") { $0.arrayValue?.compactMap(\.stringValue) }
        let types = gguf.metadata["tokenizer.ggml.token_type"]?.arrayValue?.compactMap(\.intValue) ?? []
        // Token types: 3 = control, 4 = user-defined; both are matched as whole tokens in text.
        let specials = Set(types.enumerated().filter { $0.element == 3 || $0.element == 4 }.map(\.offset))
        let eos = gguf.int("tokenizer.ggml.eos_token_id")
        let spec = Specification(
            tokens: tokens, merges: merges, specialTokenIDs: specials, preTokenizer: pre,
            bosTokenID: gguf.int("tokenizer.ggml.bos_token_id"), eosTokenIDs: eos.map { [$0] } ?? [],
            addBOS: gguf.metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? false)
        do {
            try self.init(spec)
        } catch {
            throw .malformed(path: gguf.path, field: "tokenizer.ggml", "\(error)")
        }
    }
}
