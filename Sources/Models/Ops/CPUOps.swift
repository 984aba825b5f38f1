#if canImport(Glibc)
import Glibc
#endif
import TensorKit

/// The CPU backend's ops: the functions `LlamaModel` itself calls (RoPE, attention) and the TensorKit kernels it
/// uses (matmul, RMSNorm, SwiGLU), exposed on host arrays for the op-by-op harness.
public final class CPUOps: OpBackend {
    public let name = "CPU (fp32)"
    public init() {}

    public func matmul(_ x: [Float], rows: Int, weight: [Float], outputs: Int) throws -> [Float] {
        let w = Matrix(fp32: weight, outputs: outputs, inputs: weight.count / outputs)
        var y = [Float](repeating: 0, count: rows * outputs)
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { w.multiply(xb.baseAddress!, rows: rows, into: $0.baseAddress!) } }
        return y
    }

    public func rmsNorm(_ x: [Float], rows: Int, weight: [Float], eps: Float) throws -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        CPUKernels.rmsNorm(x, rows: rows, size: weight.count, weight: weight, eps: eps, into: &y)
        return y
    }

    public func rope(_ x: [Float], positions: [Int], heads: Int, headDim: Int, inverseFrequencies: [Float]) throws -> [Float] {
        var y = x
        Self.rope(&y, positions: positions, heads: heads, headDim: headDim, inverseFrequencies: inverseFrequencies)
        return y
    }

    public func swiglu(gate: [Float], up: [Float]) throws -> [Float] {
        var y = gate
        CPUKernels.swiglu(&y, up, count: y.count)
        return y
    }

    public func attention(q: [Float], k: [Float], v: [Float], positions: [Int], heads: Int, kvHeads: Int, headDim: Int) throws -> [Float] {
        let kvDim = kvHeads * headDim, n = k.count / kvDim, blockSize = 16
        let blocks = (n + blockSize - 1) / blockSize
        let cache = PagedKVCache(layers: 1, kvDim: kvDim, blockSize: blockSize, numBlocks: blocks)
        let table = Array((0..<blocks).reversed())  // not in order, as a real block table
        for j in 0..<n {
            table.withUnsafeBufferPointer { tb in
                let o = cache.offset(table: tb.baseAddress!, layer: 0, position: j)
                k.withUnsafeBufferPointer { (cache.k + o).update(from: $0.baseAddress! + j * kvDim, count: kvDim) }
                v.withUnsafeBufferPointer { (cache.v + o).update(from: $0.baseAddress! + j * kvDim, count: kvDim) }
            }
        }
        var out = [Float](repeating: 0, count: q.count)
        Self.attention(q, rowStep: positions.map { _ in 0 }, rowPosition: positions, tables: [table], layer: 0, cache: cache,
                       heads: heads, kvHeads: kvHeads, headDim: headDim, into: &out)
        return out
    }

    /// Rotate-half RoPE on each head: (x_i, x_{i+d/2}) rotated by pos · inv_freq[i].
    static func rope(_ x: inout [Float], positions: [Int], heads: Int, headDim hd: Int, inverseFrequencies: [Float]) {
        let half = hd / 2
        for (t, position) in positions.enumerated() {
            let pos = Float(position)
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

    /// Causal GQA attention of each query row against its own sequence's positions 0 ... its position, read
    /// through the block table in position order (so the result is the same for any block size or batch).
    static func attention(_ q: [Float], rowStep: [Int], rowPosition: [Int], tables: [[Int]], layer: Int,
                          cache: PagedKVCache, heads: Int, kvHeads: Int, headDim hd: Int, into out: inout [Float]) {
        let group = heads / kvHeads, QD = heads * hd
        let scale = 1 / Float(hd).squareRoot()
        let bs = cache.blockSize
        let rows = rowStep.count
        q.withUnsafeBufferPointer { qb in
        out.withUnsafeMutableBufferPointer { ob in
        let qs = UnsafeSendable(qb.baseAddress!), os = UnsafeSendable(UnsafePointer(ob.baseAddress!))
        let ks = UnsafeSendable(UnsafePointer(cache.k)), vs = UnsafeSendable(UnsafePointer(cache.v))
        CPUKernels.parallelFor(rows * heads) { task in
            let t = task / heads, h = task % heads, kvh = h / group
            let n = rowPosition[t] + 1
            let table = tables[rowStep[t]]
            withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { scores in
                let qRow = qs.pointer + t * QD + h * hd
                var maxScore = -Float.infinity
                for j in 0..<n {
                    let kRow = ks.pointer + cache.offset(block: table[j / bs], layer: layer, slot: j % bs) + kvh * hd
                    let s = CPUKernels.dot(qRow, kRow, hd) * scale
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
                    let vRow = vs.pointer + cache.offset(block: table[j / bs], layer: layer, slot: j % bs) + kvh * hd
                    for i in 0..<hd { o[i] += p * vRow[i] }
                }
            }
        }
        }
        }
    }
}
