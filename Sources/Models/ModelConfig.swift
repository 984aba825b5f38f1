import Foundation
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
    /// The output projection is the embedding matrix (`tie_word_embeddings`; a GGUF without `output.weight`).
    public var tiedEmbeddings = false
    /// Llama 3's frequency-dependent RoPE scaling (`rope_type: llama3`), when the checkpoint uses it.
    public var ropeScaling: Llama3RopeScaling?

    public var kvDim: Int { kvHeads * headDim }

    /// Llama 3 RoPE scaling: low frequencies divided by `factor`, high ones kept, a smooth blend between.
    public struct Llama3RopeScaling: Sendable, Equatable {
        public var factor: Float
        public var lowFreqFactor: Float
        public var highFreqFactor: Float
        public var originalContext: Float

        /// The scaled inverse frequencies, as transformers computes them.
        public func apply(_ inverseFrequencies: [Float]) -> [Float] {
            let lowWavelength = originalContext / lowFreqFactor
            let highWavelength = originalContext / highFreqFactor
            return inverseFrequencies.map { f in
                let wavelength = 2 * Float.pi / f
                if wavelength < highWavelength { return f }
                if wavelength > lowWavelength { return f / factor }
                let smooth = (originalContext / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
                return (1 - smooth) * f / factor + smooth * f
            }
        }
    }

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
        tiedEmbeddings = gguf.tensors["output.weight"] == nil
        guard heads % kvHeads == 0, headDim % 2 == 0, embedding.dimensions[0] == hiddenSize else {
            throw .malformed(path: gguf.path, field: "\(arch).attention", "heads \(heads), kv heads \(kvHeads), head dim \(headDim)")
        }
    }
}

extension ModelConfig {
    /// From a Hugging Face `config.json` (transformers 4 or 5 spellings: `rope_theta` or `rope_parameters`,
    /// `torch_dtype` or `dtype`, `rope_scaling` or `rope_parameters.rope_type`).
    public init(huggingFace path: String) throws(ModelFileError) {
        guard let data = FileManager.default.contents(atPath: path) else { throw .io(path: path, "cannot read") }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .malformed(path: path, field: "config.json", "not a JSON object")
        }
        func int(_ key: String, default value: Int? = nil) throws(ModelFileError) -> Int {
            guard let v = (json[key] as? NSNumber)?.intValue ?? value else { throw .malformed(path: path, field: key, "missing") }
            guard v > 0, v < 1 << 24 else { throw .malformed(path: path, field: key, "\(v)") }
            return v
        }
        guard let type = json["model_type"] as? String else { throw .malformed(path: path, field: "model_type", "missing") }
        architecture = type
        hiddenSize = try int("hidden_size")
        layers = try int("num_hidden_layers")
        heads = try int("num_attention_heads")
        kvHeads = try int("num_key_value_heads", default: heads)
        headDim = try int("head_dim", default: hiddenSize / heads)
        ffnSize = try int("intermediate_size")
        vocabSize = try int("vocab_size")
        contextLength = try int("max_position_embeddings", default: 4096)
        let rope = json["rope_parameters"] as? [String: Any]
        let theta = (json["rope_theta"] as? NSNumber) ?? (rope?["rope_theta"] as? NSNumber)
        ropeTheta = theta?.floatValue ?? 10000
        rmsEps = (json["rms_norm_eps"] as? NSNumber)?.floatValue ?? 1e-6
        tiedEmbeddings = (json["tie_word_embeddings"] as? Bool) ?? false
        let scaling = (json["rope_scaling"] as? [String: Any]) ?? rope
        let ropeType = (scaling?["rope_type"] as? String) ?? (scaling?["type"] as? String) ?? "default"
        switch ropeType {
        case "default": break
        case "llama3":
            guard let s = scaling, let factor = (s["factor"] as? NSNumber)?.floatValue,
                  let low = (s["low_freq_factor"] as? NSNumber)?.floatValue, let high = (s["high_freq_factor"] as? NSNumber)?.floatValue,
                  let original = (s["original_max_position_embeddings"] as? NSNumber)?.floatValue, high > low, factor > 0 else {
                throw .malformed(path: path, field: "rope_scaling", "llama3 needs factor, low_freq_factor < high_freq_factor, original_max_position_embeddings")
            }
            ropeScaling = Llama3RopeScaling(factor: factor, lowFreqFactor: low, highFreqFactor: high, originalContext: original)
        default:
            throw .unsupported(path: path, field: "rope_scaling", "rope_type '\(ropeType)' (default and llama3 are supported)")
        }
        guard heads % kvHeads == 0, headDim % 2 == 0 else {
            throw .malformed(path: path, field: "num_key_value_heads", "heads \(heads), kv heads \(kvHeads), head dim \(headDim)")
        }
    }
}
