import ModelFiles
import TensorKit

/// One decoder layer's weights, fp32, row-major [outputs × inputs]. Q and K rows are in Hugging Face order
/// (rotate-half RoPE), so K in the KV cache has the same layout as vLLM's: chunks in the store stay compatible.
struct LayerWeights {
    var attnNorm: [Float]
    var wq: [Float], wk: [Float], wv: [Float], wo: [Float]
    var bq: [Float]?, bk: [Float]?, bv: [Float]?
    var ffnNorm: [Float]
    var wGate: [Float], wUp: [Float], wDown: [Float]
}

struct LlamaWeights {
    var embedding: [Float]      // [vocab × hidden]
    var layers: [LayerWeights]
    var outputNorm: [Float]
    var output: [Float]?        // [vocab × hidden]; nil when tied to the embedding

    init(gguf: GGUFFile, config: ModelConfig) throws(ModelFileError) {
        func tensor(_ name: String, _ shape: [Int]) throws(ModelFileError) -> [Float] {
            guard let info = gguf.tensors[name] else { throw .malformed(path: gguf.path, field: name, "missing tensor") }
            guard info.dimensions == shape else {
                throw .malformed(path: gguf.path, field: name, "shape \(info.dimensions), expected \(shape)")
            }
            return Dequantize.tensor(gguf, info)
        }
        func optional(_ name: String, _ shape: [Int]) throws(ModelFileError) -> [Float]? {
            gguf.tensors[name] == nil ? nil : try tensor(name, shape)
        }
        let d = config.hiddenSize, kv = config.kvDim, f = config.ffnSize
        embedding = try tensor("token_embd.weight", [d, config.vocabSize])
        outputNorm = try tensor("output_norm.weight", [d])
        output = try optional("output.weight", [d, config.vocabSize])
        // llama GGUFs store Q/K rows permuted for adjacent-pair RoPE; qwen2 GGUFs are not permuted.
        let permuted = config.architecture == "llama" || config.architecture == "mistral"
        var layers: [LayerWeights] = []
        for l in 0..<config.layers {
            let p = "blk.\(l)."
            var wq = try tensor(p + "attn_q.weight", [d, config.heads * config.headDim])
            var wk = try tensor(p + "attn_k.weight", [d, kv])
            if permuted {
                wq = Self.unpermute(wq, heads: config.heads, headDim: config.headDim, inputs: d)
                wk = Self.unpermute(wk, heads: config.kvHeads, headDim: config.headDim, inputs: d)
            }
            layers.append(LayerWeights(
                attnNorm: try tensor(p + "attn_norm.weight", [d]),
                wq: wq, wk: wk, wv: try tensor(p + "attn_v.weight", [d, kv]),
                wo: try tensor(p + "attn_output.weight", [config.heads * config.headDim, d]),
                bq: try optional(p + "attn_q.bias", [config.heads * config.headDim]),
                bk: try optional(p + "attn_k.bias", [kv]), bv: try optional(p + "attn_v.bias", [kv]),
                ffnNorm: try tensor(p + "ffn_norm.weight", [d]),
                wGate: try tensor(p + "ffn_gate.weight", [d, f]), wUp: try tensor(p + "ffn_up.weight", [d, f]),
                wDown: try tensor(p + "ffn_down.weight", [f, d])))
        }
        self.layers = layers
    }

    /// Undoes the GGUF converter's row permutation within each head: GGUF row 2j+k holds HF row k·(D/2)+j.
    static func unpermute(_ w: [Float], heads: Int, headDim: Int, inputs: Int) -> [Float] {
        var out = w
        let half = headDim / 2
        for h in 0..<heads {
            for j in 0..<half {
                for k in 0..<2 {
                    let src = (h * headDim + 2 * j + k) * inputs
                    let dst = (h * headDim + k * half + j) * inputs
                    for i in 0..<inputs { out[dst + i] = w[src + i] }
                }
            }
        }
        return out
    }
}
