import ModelFiles
import TensorKit

/// One decoder layer's weights. Matrices stay in their GGUF block encoding unless the fp32 reference path is asked
/// for. Q and K rows are in Hugging Face order (rotate-half RoPE), so K in the KV cache has vLLM's layout and
/// chunks in the KV store stay compatible.
struct LayerWeights {
    var attnNorm: [Float]
    var wq: Matrix, wk: Matrix, wv: Matrix, wo: Matrix
    var bq: [Float]?, bk: [Float]?, bv: [Float]?
    var ffnNorm: [Float]
    var wGate: Matrix, wUp: Matrix, wDown: Matrix
}

struct LlamaWeights {
    var embedding: Matrix       // [vocab × hidden]
    var layers: [LayerWeights]
    var outputNorm: [Float]
    var output: Matrix          // [vocab × hidden]; the embedding when tied

    init(gguf: GGUFFile, config: ModelConfig, keepQuantized: Bool, progress: ((Int, Int) -> Void)? = nil) throws(ModelFileError) {
        func info(_ name: String, _ shape: [Int]) throws(ModelFileError) -> GGUFTensorInfo {
            guard let info = gguf.tensors[name] else { throw .malformed(path: gguf.path, field: name, "missing tensor") }
            guard info.dimensions == shape else {
                throw .malformed(path: gguf.path, field: name, "shape \(info.dimensions), expected \(shape)")
            }
            return info
        }
        func matrix(_ name: String, _ shape: [Int], rowOrder: [Int]? = nil) throws(ModelFileError) -> Matrix {
            Matrix(gguf: gguf, try info(name, shape), rowOrder: rowOrder, keepQuantized: keepQuantized)
        }
        func vector(_ name: String, _ size: Int) throws(ModelFileError) -> [Float] {
            Dequantize.tensor(gguf, try info(name, [size]))
        }
        func optionalVector(_ name: String, _ size: Int) throws(ModelFileError) -> [Float]? {
            gguf.tensors[name] == nil ? nil : try vector(name, size)
        }
        let d = config.hiddenSize, kv = config.kvDim, f = config.ffnSize, qd = config.heads * config.headDim
        embedding = try matrix("token_embd.weight", [d, config.vocabSize])
        outputNorm = try vector("output_norm.weight", d)
        output = gguf.tensors["output.weight"] == nil ? embedding : try matrix("output.weight", [d, config.vocabSize])
        // llama GGUFs store Q/K rows permuted for adjacent-pair RoPE; qwen2 GGUFs are not permuted.
        let permuted = config.architecture == "llama" || config.architecture == "mistral"
        let qOrder = permuted ? Self.unpermutedOrder(heads: config.heads, headDim: config.headDim) : nil
        let kOrder = permuted ? Self.unpermutedOrder(heads: config.kvHeads, headDim: config.headDim) : nil
        var layers: [LayerWeights] = []
        for l in 0..<config.layers {
            progress?(l, config.layers)
            let p = "blk.\(l)."
            layers.append(LayerWeights(
                attnNorm: try vector(p + "attn_norm.weight", d),
                wq: try matrix(p + "attn_q.weight", [d, qd], rowOrder: qOrder),
                wk: try matrix(p + "attn_k.weight", [d, kv], rowOrder: kOrder),
                wv: try matrix(p + "attn_v.weight", [d, kv]),
                wo: try matrix(p + "attn_output.weight", [qd, d]),
                bq: try optionalVector(p + "attn_q.bias", qd), bk: try optionalVector(p + "attn_k.bias", kv),
                bv: try optionalVector(p + "attn_v.bias", kv),
                ffnNorm: try vector(p + "ffn_norm.weight", d),
                wGate: try matrix(p + "ffn_gate.weight", [d, f]), wUp: try matrix(p + "ffn_up.weight", [d, f]),
                wDown: try matrix(p + "ffn_down.weight", [f, d])))
        }
        self.layers = layers
    }

    /// Source rows that undo the GGUF converter's permutation within each head: HF row k·(D/2)+j is GGUF row 2j+k.
    static func unpermutedOrder(heads: Int, headDim: Int) -> [Int] {
        let half = headDim / 2
        var order = [Int](repeating: 0, count: heads * headDim)
        for h in 0..<heads {
            for k in 0..<2 {
                for j in 0..<half { order[h * headDim + k * half + j] = h * headDim + 2 * j + k }
            }
        }
        return order
    }
}
