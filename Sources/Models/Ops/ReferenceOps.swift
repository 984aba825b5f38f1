import Foundation

/// The reference: each op written as its formula, accumulated in Double, one element at a time.
public final class ReferenceOps: OpBackend {
    public let name = "reference (Double)"
    public init() {}

    public func matmul(_ x: [Float], rows: Int, weight: [Float], outputs: Int) throws -> [Float] {
        let inputs = weight.count / outputs
        return (0..<rows * outputs).map { e in
            let (t, o) = (e / outputs, e % outputs)
            var s = 0.0
            for i in 0..<inputs { s += Double(x[t * inputs + i]) * Double(weight[o * inputs + i]) }
            return Float(s)
        }
    }

    public func rmsNorm(_ x: [Float], rows: Int, weight: [Float], eps: Float) throws -> [Float] {
        let size = weight.count
        var out = [Float](repeating: 0, count: rows * size)
        for t in 0..<rows {
            let ss = (0..<size).reduce(0.0) { $0 + Double(x[t * size + $1]) * Double(x[t * size + $1]) }
            let scale = 1 / (ss / Double(size) + Double(eps)).squareRoot()
            for i in 0..<size { out[t * size + i] = Float(Double(x[t * size + i]) * scale * Double(weight[i])) }
        }
        return out
    }

    public func rope(_ x: [Float], positions: [Int], heads: Int, headDim: Int, inverseFrequencies: [Float]) throws -> [Float] {
        var out = x
        let half = headDim / 2
        for (t, p) in positions.enumerated() {
            for h in 0..<heads {
                for i in 0..<half {
                    // The angle rounded to fp32 as transformers computes it (position × inv_freq in float32); at
                    // position 4095 that rounding alone moves sin/cos by ~1e-4.
                    let angle = Double(Float(p) * inverseFrequencies[i])
                    let base = (t * heads + h) * headDim
                    let a = Double(x[base + i]), b = Double(x[base + i + half])
                    out[base + i] = Float(a * cos(angle) - b * sin(angle))
                    out[base + i + half] = Float(b * cos(angle) + a * sin(angle))
                }
            }
        }
        return out
    }

    public func swiglu(gate: [Float], up: [Float]) throws -> [Float] {
        zip(gate, up).map { g, u in Float(Double(g) / (1 + exp(-Double(g))) * Double(u)) }
    }

    public func attention(q: [Float], k: [Float], v: [Float], positions: [Int], heads: Int, kvHeads: Int, headDim: Int) throws -> [Float] {
        let kvDim = kvHeads * headDim, group = heads / kvHeads
        var out = [Float](repeating: 0, count: q.count)
        for (t, p) in positions.enumerated() {
            for h in 0..<heads {
                let qBase = (t * heads + h) * headDim, kvh = h / group
                let scores = (0...p).map { j in
                    (0..<headDim).reduce(0.0) { $0 + Double(q[qBase + $1]) * Double(k[j * kvDim + kvh * headDim + $1]) } / Double(headDim).squareRoot()
                }
                let m = scores.max()!
                let e = scores.map { exp($0 - m) }
                let sum = e.reduce(0, +)
                for d in 0..<headDim {
                    var o = 0.0
                    for j in 0...p { o += e[j] * Double(v[j * kvDim + kvh * headDim + d]) }
                    out[qBase + d] = Float(o / sum)
                }
            }
        }
        return out
    }
}
