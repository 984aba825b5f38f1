import ModelFiles

/// Hyperparameters of a Llama-family decoder, read from a checkpoint.
public struct ModelConfig: Sendable, Equatable {
    public var architecture: String
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ffnSize: Int
    public var vocabSize: Int
    public var contextLength: Int
    public var ropeTheta: Float
    public var rmsEps: Float

    public var kvDim: Int { kvHeads * headDim }

    /// From a GGUF's `<arch>.*` metadata, with every value checked for sense.
    public init(gguf: GGUFFile) throws(ModelFileError) {
        let arch = try gguf.require("general.architecture") { $0.stringValue }
        func int(_ key: String) throws(ModelFileError) -> Int {
            let v = try gguf.require("\(arch).\(key)") { $0.intValue }
            guard v > 0, v < 1 << 24 else { throw .malformed(path: gguf.path, field: "\(arch).\(key)", "\(v)") }
            return v
        }
        architecture = arch
        hiddenSize = try int("embedding_length")
        layers = try int("block_count")
        heads = try int("attention.head_count")
        kvHeads = gguf.int("\(arch).attention.head_count_kv") ?? heads
        ffnSize = try int("feed_forward_length")
        contextLength = gguf.int("\(arch).context_length") ?? 4096
        headDim = gguf.int("\(arch).attention.key_length") ?? hiddenSize / heads
        ropeTheta = Float(gguf.double("\(arch).rope.freq_base") ?? 10000)
        rmsEps = Float(gguf.double("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-5)
        guard let embedding = gguf.tensors["token_embd.weight"], embedding.dimensions.count == 2 else {
            throw .malformed(path: gguf.path, field: "token_embd.weight", "missing or not a matrix")
        }
        vocabSize = embedding.dimensions[1]
        guard heads % kvHeads == 0, headDim % 2 == 0, embedding.dimensions[0] == hiddenSize else {
            throw .malformed(path: gguf.path, field: "\(arch).attention", "heads \(heads), kv heads \(kvHeads), head dim \(headDim)")
        }
    }
}
