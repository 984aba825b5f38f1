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

public struct LlamaWeights {
    var embedding: Matrix       // [vocab × hidden]
    var layers: [LayerWeights]
    var outputNorm: [Float]
    var output: Matrix          // [vocab × hidden]; the embedding when tied

    /// Tensor names of a checkpoint format (public: the GPU backend loads the same tensors).
    public enum Naming: Sendable {
        case gguf, huggingFace

        public func global(_ role: String) -> String {
            switch (self, role) {
            case (.gguf, "embedding"): return "token_embd.weight"
            case (.gguf, "outputNorm"): return "output_norm.weight"
            case (.gguf, _): return "output.weight"
            case (.huggingFace, "embedding"): return "model.embed_tokens.weight"
            case (.huggingFace, "outputNorm"): return "model.norm.weight"
            case (.huggingFace, _): return "lm_head.weight"
            }
        }

        public func layer(_ l: Int, _ role: String) -> String {
            switch self {
            case .gguf:
                let names = ["attnNorm": "attn_norm.weight", "q": "attn_q.weight", "k": "attn_k.weight", "v": "attn_v.weight",
                             "o": "attn_output.weight", "bq": "attn_q.bias", "bk": "attn_k.bias", "bv": "attn_v.bias",
                             "ffnNorm": "ffn_norm.weight", "gate": "ffn_gate.weight", "up": "ffn_up.weight", "down": "ffn_down.weight"]
                return "blk.\(l)." + names[role]!
            case .huggingFace:
                let names = ["attnNorm": "input_layernorm.weight", "q": "self_attn.q_proj.weight", "k": "self_attn.k_proj.weight",
                             "v": "self_attn.v_proj.weight", "o": "self_attn.o_proj.weight", "bq": "self_attn.q_proj.bias",
                             "bk": "self_attn.k_proj.bias", "bv": "self_attn.v_proj.bias", "ffnNorm": "post_attention_layernorm.weight",
                             "gate": "mlp.gate_proj.weight", "up": "mlp.up_proj.weight", "down": "mlp.down_proj.weight"]
                return "model.layers.\(l)." + names[role]!
            }
        }
    }

    init(store: any TensorStore, naming: Naming, config: ModelConfig, keepQuantized: Bool,
         progress: ((Int, Int) -> Void)? = nil) throws(ModelFileError) {
        func info(_ name: String, _ shape: [Int]) throws(ModelFileError) -> GGUFTensorInfo {
            guard let info = store.tensors[name] else { throw .malformed(path: store.path, field: name, "missing tensor") }
            guard info.dimensions == shape else {
                throw .malformed(path: store.path, field: name, "shape \(Array(info.dimensions.reversed())), expected \(Array(shape.reversed()))")
            }
            return info
        }
        func matrix(_ name: String, _ shape: [Int], rowOrder: [Int]? = nil) throws(ModelFileError) -> Matrix {
            Matrix(store: store, try info(name, shape), rowOrder: rowOrder, keepQuantized: keepQuantized)
        }
        func vector(_ name: String, _ size: Int) throws(ModelFileError) -> [Float] {
            Dequantize.tensor(store, try info(name, [size]))
        }
        func optionalVector(_ name: String, _ size: Int) throws(ModelFileError) -> [Float]? {
            store.tensors[name] == nil ? nil : try vector(name, size)
        }
        let d = config.hiddenSize, kv = config.kvDim, f = config.ffnSize, qd = config.heads * config.headDim
        embedding = try matrix(naming.global("embedding"), [d, config.vocabSize])
        outputNorm = try vector(naming.global("outputNorm"), d)
        let outputName = naming.global("output")
        output = store.tensors[outputName] == nil || config.tiedEmbeddings ? embedding : try matrix(outputName, [d, config.vocabSize])
        // llama GGUFs store Q/K rows permuted for adjacent-pair RoPE; qwen2 GGUFs and HF checkpoints are not.
        let permuted = naming == .gguf && (config.architecture == "llama" || config.architecture == "mistral")
        let qOrder = permuted ? Self.unpermutedOrder(heads: config.heads, headDim: config.headDim) : nil
        let kOrder = permuted ? Self.unpermutedOrder(heads: config.kvHeads, headDim: config.headDim) : nil
        var layers: [LayerWeights] = []
        for l in 0..<config.layers {
            progress?(l, config.layers)
            func n(_ role: String) -> String { naming.layer(l, role) }
            layers.append(LayerWeights(
                attnNorm: try vector(n("attnNorm"), d),
                wq: try matrix(n("q"), [d, qd], rowOrder: qOrder),
                wk: try matrix(n("k"), [d, kv], rowOrder: kOrder),
                wv: try matrix(n("v"), [d, kv]),
                wo: try matrix(n("o"), [qd, d]),
                bq: try optionalVector(n("bq"), qd), bk: try optionalVector(n("bk"), kv), bv: try optionalVector(n("bv"), kv),
                ffnNorm: try vector(n("ffnNorm"), d),
                wGate: try matrix(n("gate"), [d, f]), wUp: try matrix(n("up"), [d, f]), wDown: try matrix(n("down"), [f, d])))
        }
        self.layers = layers
    }

    /// Source rows that undo the GGUF converter's permutation within each head: HF row k·(D/2)+j is GGUF row 2j+k.
    public static func unpermutedOrder(heads: Int, headDim: Int) -> [Int] {
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
