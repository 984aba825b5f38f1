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
    /// inv_freq[i] = θ^(−2i/d) for the rotate-half RoPE pairs (i, i + d/2).
    let inverseFrequencies: [Float]

    /// `reference`: dequantize every matrix to fp32 (the reference path); otherwise quantized matrices stay
    /// quantized in memory and are dequantized inside the dot products.
    public init(gguf: GGUFFile, reference: Bool = false) throws(ModelFileError) {
        let config = try ModelConfig(gguf: gguf)
        guard ["llama", "mistral", "qwen2"].contains(config.architecture) else {
            throw .unsupported(path: gguf.path, field: "general.architecture", "'\(config.architecture)'")
        }
        self.config = config
        weights = try LlamaWeights(gguf: gguf, config: config, keepQuantized: !reference)
        let half = config.headDim / 2
        inverseFrequencies = (0..<half).map { i in powf(config.ropeTheta, -Float(2 * i) / Float(config.headDim)) }
    }

    /// Runs `tokens` at positions cache.count ..< cache.count + tokens.count, appending their K/V to `cache`.
    /// Returns the logits of every position when `allLogits`, else of the last one: [rows × vocab].
    public func forward(_ tokens: [Int], cache: KVCache, allLogits: Bool = false) -> [Float] {
        let c = config
        let T = tokens.count, D = c.hiddenSize, KV = c.kvDim, F = c.ffnSize, QD = c.heads * c.headDim
        let start = cache.count
        precondition(start + T <= cache.capacity, "KV cache full")
        var x = [Float](repeating: 0, count: T * D)          // residual stream [T × D]
        var xn = [Float](repeating: 0, count: T * D)         // normed input [T × D]
        var q = [Float](repeating: 0, count: T * QD)         // [T × heads·hd]
        var k = [Float](repeating: 0, count: T * KV)         // [T × kvHeads·hd]
        var v = [Float](repeating: 0, count: T * KV)
        var attn = [Float](repeating: 0, count: T * QD)      // attention output [T × heads·hd]
        var gate = [Float](repeating: 0, count: T * F)       // [T × F]
        var up = [Float](repeating: 0, count: T * F)
        var delta = [Float](repeating: 0, count: T * D)      // a sublayer's output [T × D]

        x.withUnsafeMutableBufferPointer { xb in
            for (t, token) in tokens.enumerated() { weights.embedding.row(token, into: xb.baseAddress! + t * D) }
        }
        for l in 0..<c.layers {
            let w = weights.layers[l]
            // Attention: x += Wo · attention(RoPE(Wq·xn), RoPE(Wk·xn), Wv·xn)
            CPUKernels.rmsNorm(x, rows: T, size: D, weight: w.attnNorm, eps: c.rmsEps, into: &xn)
            project(xn, T, D, w.wq, QD, w.bq, &q)
            project(xn, T, D, w.wk, KV, w.bk, &k)
            project(xn, T, D, w.wv, KV, w.bv, &v)
            applyRoPE(&q, rows: T, heads: c.heads, start: start)
            applyRoPE(&k, rows: T, heads: c.kvHeads, start: start)
            for t in 0..<T {
                let o = cache.offset(layer: l, position: start + t)
                for i in 0..<KV {
                    cache.k[o + i] = k[t * KV + i]
                    cache.v[o + i] = v[t * KV + i]
                }
            }
            attention(q, rows: T, layer: l, start: start, cache: cache, into: &attn)
            project(attn, T, QD, w.wo, D, nil, &delta)
            for i in 0..<T * D { x[i] += delta[i] }
            // Feed-forward: x += W_down · (silu(W_gate·xn) ⊙ W_up·xn)
            CPUKernels.rmsNorm(x, rows: T, size: D, weight: w.ffnNorm, eps: c.rmsEps, into: &xn)
            project(xn, T, D, w.wGate, F, nil, &gate)
            project(xn, T, D, w.wUp, F, nil, &up)
            CPUKernels.swiglu(&gate, up, count: T * F)
            project(gate, T, F, w.wDown, D, nil, &delta)
            for i in 0..<T * D { x[i] += delta[i] }
        }
        cache.count = start + T
        // Logits: the final norm of the rows asked for, times the output matrix (the embedding when tied).
        let rows = allLogits ? T : 1
        let first = T - rows
        var normed = [Float](repeating: 0, count: rows * D)
        x.withUnsafeBufferPointer { xb in
            CPUKernels.rmsNorm(xb.baseAddress! + first * D, rows: rows, size: D, weight: weights.outputNorm, eps: c.rmsEps, into: &normed)
        }
        var logits = [Float](repeating: 0, count: rows * c.vocabSize)
        project(normed, rows, D, weights.output, c.vocabSize, nil, &logits)
        return logits
    }

    private func project(_ x: [Float], _ rows: Int, _ inputs: Int, _ w: Matrix, _ outputs: Int, _ bias: [Float]?,
                         _ y: inout [Float]) {
        precondition(w.inputs == inputs && w.outputs == outputs)
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                if let bias {
                    bias.withUnsafeBufferPointer { w.multiply(xb.baseAddress!, rows: rows, bias: $0.baseAddress!, into: yb.baseAddress!) }
                } else {
                    w.multiply(xb.baseAddress!, rows: rows, into: yb.baseAddress!)
                }
            }
        }
    }

    /// Rotate-half RoPE on each head: (x_i, x_{i+d/2}) rotated by pos · inv_freq[i].
    private func applyRoPE(_ x: inout [Float], rows: Int, heads: Int, start: Int) {
        let hd = config.headDim, half = hd / 2
        for t in 0..<rows {
            let pos = Float(start + t)
            for i in 0..<half {
                let angle = pos * inverseFrequencies[i]
                let (s, cs) = (sinf(angle), cosf(angle))
                for h in 0..<heads {
                    let base = (t * heads + h) * hd
                    let a = x[base + i], b = x[base + i + half]
                    x[base + i] = a * cs - b * s
                    x[base + i + half] = b * cs + a * s
                }
            }
        }
    }

    /// Causal GQA attention of each query row against cache positions 0 ... start + t.
    private func attention(_ q: [Float], rows: Int, layer: Int, start: Int, cache: KVCache, into out: inout [Float]) {
        let c = config, hd = c.headDim, group = c.heads / c.kvHeads, QD = c.heads * hd
        let scale = 1 / Float(hd).squareRoot()
        let kvDim = cache.kvDim
        let cacheBase = cache.offset(layer: layer, position: 0)
        q.withUnsafeBufferPointer { qb in
        cache.k.withUnsafeBufferPointer { kb in
        cache.v.withUnsafeBufferPointer { vb in
        out.withUnsafeMutableBufferPointer { ob in
        let qs = UnsafeSendable(qb.baseAddress!), ks = UnsafeSendable(kb.baseAddress!), vs = UnsafeSendable(vb.baseAddress!)
        let os = UnsafeSendable(UnsafePointer(ob.baseAddress!))
        CPUKernels.parallelFor(rows * c.heads) { task in
            let t = task / c.heads, h = task % c.heads, kvh = h / group
            let n = start + t + 1
            var scores = [Float](repeating: 0, count: n)
            let qRow = qs.pointer + t * QD + h * hd
            var maxScore = -Float.infinity
            for j in 0..<n {
                let s = CPUKernels.dot(qRow, ks.pointer + cacheBase + j * kvDim + kvh * hd, hd) * scale
                scores[j] = s
                maxScore = max(maxScore, s)
            }
            var sum: Float = 0
            for j in 0..<n {
                scores[j] = expf(scores[j] - maxScore)
                sum += scores[j]
            }
            let o = UnsafeMutablePointer(mutating: os.pointer) + t * QD + h * hd
            for i in 0..<hd { o[i] = 0 }
            for j in 0..<n {
                let p = scores[j] / sum
                let vRow = vs.pointer + cacheBase + j * kvDim + kvh * hd
                for i in 0..<hd { o[i] += p * vRow[i] }
            }
        }
        }
        }
        }
        }
    }
}
