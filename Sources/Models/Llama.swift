import ModelFiles
import TensorKit
#if canImport(Glibc)
import Glibc
#endif

/// The Llama-family decoder (llama, mistral, qwen2: qwen2 adds q/k/v biases), fp32 reference path.
/// Reads top to bottom as the math; activations live in scratch buffers sized once per batch length.
public final class LlamaModel: @unchecked Sendable {
    public let config: ModelConfig
    let weights: LlamaWeights
    /// inv_freq[i] = θ^(−2i/d) for the rotate-half RoPE pairs (i, i + d/2), after any RoPE scaling.
    public let inverseFrequencies: [Float]
    /// What quantized matrices multiply: int8 activations (fast, llama.cpp's numerics) or fp32 (the reference).
    public let activations: ActivationPrecision

    /// `reference`: dequantize every matrix to fp32 (the reference path); otherwise quantized matrices stay
    /// quantized in memory and are dequantized inside the dot products.
    public convenience init(gguf: GGUFFile, reference: Bool = false, activations: ActivationPrecision = .default,
                            progress: ((Int, Int) -> Void)? = nil) throws(ModelFileError) {
        try self.init(checkpoint: LlamaCheckpoint(gguf: gguf), reference: reference, activations: activations, progress: progress)
    }

    /// A Hugging Face folder: `config.json` and `model.safetensors` (or its sharded index).
    public convenience init(huggingFace directory: String, progress: ((Int, Int) -> Void)? = nil) throws(ModelFileError) {
        try self.init(checkpoint: LlamaCheckpoint(huggingFace: directory), progress: progress)
    }

    public init(checkpoint: LlamaCheckpoint, reference: Bool = false, activations: ActivationPrecision = .default,
                progress: ((Int, Int) -> Void)? = nil) throws(ModelFileError) {
        let config = checkpoint.config
        guard ["llama", "mistral", "qwen2"].contains(config.architecture) else {
            throw .unsupported(path: checkpoint.store.path, field: checkpoint.naming == .gguf ? "general.architecture" : "model_type",
                               "'\(config.architecture)' (llama, mistral, qwen2)")
        }
        self.config = config
        self.activations = activations
        weights = try LlamaWeights(store: checkpoint.store, naming: checkpoint.naming, config: config, keepQuantized: !reference,
                                   progress: progress)
        progress?(config.layers, config.layers)
        inverseFrequencies = checkpoint.inverseFrequencies
    }

    /// Runs `tokens` at positions cache.count ..< cache.count + tokens.count, appending their K/V to `cache`.
    /// Returns the logits of every position when `allLogits`, else of the last one: [rows × vocab].
    public func forward(_ tokens: [Int], cache: KVCache, allLogits: Bool = false) -> [Float] {
        precondition(cache.count + tokens.count <= cache.capacity, "KV cache full")
        let step = SequenceStep(tokens: tokens, start: cache.count, blockTable: [0], logits: allLogits ? .all : .last)
        let logits = forward([step], cache: cache.paged)
        cache.count += tokens.count
        return logits
    }

    /// One forward pass over a batch of sequences, each running `tokens` at positions `start ..<` in its own
    /// blocks of `cache`. Every row is computed exactly as it would be alone (batch invariance).
    /// Returns the requested logits rows of every step, in batch order: [rows × vocab].
    public func forward(_ batch: [SequenceStep], cache: PagedKVCache) -> [Float] {
        let c = config
        let D = c.hiddenSize, KV = c.kvDim, F = c.ffnSize, QD = c.heads * c.headDim
        // Row bookkeeping: row r belongs to step rowStep[r] at absolute position rowPosition[r].
        var rowStep: [Int] = [], rowPosition: [Int] = [], tokens: [Int] = []
        for (i, step) in batch.enumerated() {
            precondition(step.start + step.tokens.count <= step.blockTable.count * cache.blockSize, "block table too short")
            for (t, token) in step.tokens.enumerated() {
                precondition(token >= 0 && token < c.vocabSize, "token id \(token) out of range")
                rowStep.append(i)
                rowPosition.append(step.start + t)
                tokens.append(token)
            }
        }
        let T = tokens.count
        guard T > 0 else { return [] }
        var x = [Float](repeating: 0, count: T * D)          // residual stream [T × D]
        var xn = [Float](repeating: 0, count: T * D)         // normed input [T × D]
        var q = [Float](repeating: 0, count: T * QD)         // [T × heads·hd]
        var k = [Float](repeating: 0, count: T * KV)         // [T × kvHeads·hd]
        var v = [Float](repeating: 0, count: T * KV)
        var attn = [Float](repeating: 0, count: T * QD)      // attention output [T × heads·hd]
        var gate = [Float](repeating: 0, count: T * F)       // [T × F]
        var up = [Float](repeating: 0, count: T * F)
        var delta = [Float](repeating: 0, count: T * D)      // a sublayer's output [T × D]
        let scratch = MatmulScratch()                         // the matmuls' working memory, reused by all of them

        x.withUnsafeMutableBufferPointer { xb in
            for (t, token) in tokens.enumerated() { weights.embedding.row(token, into: xb.baseAddress! + t * D) }
        }
        let tables = batch.map(\.blockTable)
        for l in 0..<c.layers {
            let w = weights.layers[l]
            // Attention: x += Wo · attention(RoPE(Wq·xn), RoPE(Wk·xn), Wv·xn)
            CPUKernels.rmsNorm(x, rows: T, size: D, weight: w.attnNorm, eps: c.rmsEps, into: &xn)
            project(xn, T, D, w.wq, QD, w.bq, &q, scratch)
            project(xn, T, D, w.wk, KV, w.bk, &k, scratch)
            project(xn, T, D, w.wv, KV, w.bv, &v, scratch)
            applyRoPE(&q, positions: rowPosition, heads: c.heads)
            applyRoPE(&k, positions: rowPosition, heads: c.kvHeads)
            for r in 0..<T {
                tables[rowStep[r]].withUnsafeBufferPointer { table in
                    let o = cache.offset(table: table.baseAddress!, layer: l, position: rowPosition[r])
                    k.withUnsafeBufferPointer { (cache.k + o).update(from: $0.baseAddress! + r * KV, count: KV) }
                    v.withUnsafeBufferPointer { (cache.v + o).update(from: $0.baseAddress! + r * KV, count: KV) }
                }
            }
            attention(q, rowStep: rowStep, rowPosition: rowPosition, tables: tables, layer: l, cache: cache, into: &attn)
            project(attn, T, QD, w.wo, D, nil, &delta, scratch)
            for i in 0..<T * D { x[i] += delta[i] }
            // Feed-forward: x += W_down · (silu(W_gate·xn) ⊙ W_up·xn)
            CPUKernels.rmsNorm(x, rows: T, size: D, weight: w.ffnNorm, eps: c.rmsEps, into: &xn)
            project(xn, T, D, w.wGate, F, nil, &gate, scratch)
            project(xn, T, D, w.wUp, F, nil, &up, scratch)
            CPUKernels.swiglu(&gate, up, count: T * F)
            project(gate, T, F, w.wDown, D, nil, &delta, scratch)
            for i in 0..<T * D { x[i] += delta[i] }
        }
        // Logits: the final norm of the rows asked for, times the output matrix (the embedding when tied).
        var selected: [Int] = []
        var row = 0
        for step in batch {
            switch step.logits {
            case .none: break
            case .last: selected.append(row + step.tokens.count - 1)
            case .all: selected.append(contentsOf: row..<row + step.tokens.count)
            }
            row += step.tokens.count
        }
        guard !selected.isEmpty else { return [] }
        let rows = selected.count
        var normed = [Float](repeating: 0, count: rows * D)
        x.withUnsafeBufferPointer { xb in
            normed.withUnsafeMutableBufferPointer { nb in
                for (i, r) in selected.enumerated() {
                    CPUKernels.rmsNorm(xb.baseAddress! + r * D, rows: 1, size: D, weight: weights.outputNorm, eps: c.rmsEps,
                                       into: nb.baseAddress! + i * D)
                }
            }
        }
        var logits = [Float](repeating: 0, count: rows * c.vocabSize)
        project(normed, rows, D, weights.output, c.vocabSize, nil, &logits, scratch)
        return logits
    }

    private func project(_ x: [Float], _ rows: Int, _ inputs: Int, _ w: Matrix, _ outputs: Int, _ bias: [Float]?,
                         _ y: inout [Float], _ scratch: MatmulScratch) {
        precondition(w.inputs == inputs && w.outputs == outputs)
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                if let bias {
                    bias.withUnsafeBufferPointer { w.multiply(xb.baseAddress!, rows: rows, bias: $0.baseAddress!, into: yb.baseAddress!, activations: activations,
                                                               scratch: scratch) }
                } else {
                    w.multiply(xb.baseAddress!, rows: rows, into: yb.baseAddress!, activations: activations, scratch: scratch)
                }
            }
        }
    }

    private func applyRoPE(_ x: inout [Float], positions: [Int], heads: Int) {
        CPUOps.rope(&x, positions: positions, heads: heads, headDim: config.headDim, inverseFrequencies: inverseFrequencies)
    }

    private func attention(_ q: [Float], rowStep: [Int], rowPosition: [Int], tables: [[Int]], layer: Int,
                           cache: PagedKVCache, into out: inout [Float]) {
        CPUOps.attention(q, rowStep: rowStep, rowPosition: rowPosition, tables: tables, layer: layer, cache: cache,
                         heads: config.heads, kvHeads: config.kvHeads, headDim: config.headDim, into: &out)
    }
}

/// One sequence's part of a forward batch: `tokens` at positions `start ..< start + tokens.count`.
public struct SequenceStep: Sendable {
    public enum LogitRows: Sendable { case none, last, all }
    public var tokens: [Int]
    public var start: Int
    public var blockTable: [Int]
    public var logits: LogitRows

    public init(tokens: [Int], start: Int, blockTable: [Int], logits: LogitRows) {
        self.tokens = tokens
        self.start = start
        self.blockTable = blockTable
        self.logits = logits
    }

    /// The logits rows this step asks for.
    public var logitRowCount: Int {
        switch logits {
        case .none: 0
        case .last: 1
        case .all: tokens.count
        }
    }
}
