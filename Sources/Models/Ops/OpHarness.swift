import Foundation

/// Op-by-op checks of a backend against `ReferenceOps`: every op on seeded random inputs of several shapes (row
/// counts that hit the different kernel paths: one row, a few, more than a tile), error = max |y − ref| over
/// max |ref|.
public enum OpHarness {
    public struct Check: Sendable {
        public let op: String
        public let shape: String
        public let error: Double
        public let tolerance: Double
        public var passed: Bool { error <= tolerance }
    }

    /// Per-op bounds on the relative error.
    public struct Tolerances: Sendable {
        public var matmul, rmsNorm, rope, swiglu, attention: Double
        public init(matmul: Double, rmsNorm: Double, rope: Double, swiglu: Double, attention: Double) {
            (self.matmul, self.rmsNorm, self.rope, self.swiglu, self.attention) = (matmul, rmsNorm, rope, swiglu, attention)
        }
        /// fp32 arithmetic throughout (the CPU path, the GPU's fp32 mode).
        public static let fp32 = Tolerances(matmul: 1e-5, rmsNorm: 1e-5, rope: 1e-5, swiglu: 1e-5, attention: 1e-5)
        /// bf16 GEMM inputs and outputs (8 significant bits: 2^-8 relative per rounding).
        public static let bf16 = Tolerances(matmul: 1.5e-2, rmsNorm: 1e-2, rope: 1e-5, swiglu: 1e-2, attention: 1e-2)
        /// bf16 weights; the other ops' outputs as bf16 pairs (high + low half: about 16 significant bits).
        public static let splitInputs = Tolerances(matmul: 1.5e-2, rmsNorm: 1e-4, rope: 1e-5, swiglu: 1e-4, attention: 1e-4)
    }

    public static func run(_ backend: any OpBackend, tolerances t: Tolerances) throws -> [Check] {
        let reference = ReferenceOps()
        var rng = SplitMix64(seed: 2026)
        var checks: [Check] = []
        func check(_ op: String, _ shape: String, _ tolerance: Double, _ body: (any OpBackend) throws -> [Float]) throws {
            let want = try body(reference), got = try body(backend)
            precondition(want.count == got.count, "\(op) \(shape): \(got.count) values, expected \(want.count)")
            let scale = want.reduce(0.0) { max($0, abs(Double($1))) }
            let diff = zip(got, want).reduce(0.0) { max($0, abs(Double($1.0) - Double($1.1))) }
            checks.append(Check(op: op, shape: shape, error: diff.isNaN ? .infinity : diff / max(scale, 1e-30), tolerance: tolerance))
        }
        for rows in [1, 5, 33] {
            let (inputs, outputs) = (256, 96)
            let x = rng.floats(rows * inputs, -1, 1), w = rng.floats(outputs * inputs, -0.1, 0.1)
            try check("matmul", "\(rows)×\(inputs)·\(inputs)×\(outputs)", t.matmul) { try $0.matmul(x, rows: rows, weight: w, outputs: outputs) }
        }
        for rows in [1, 3] {
            let x = rng.floats(rows * 256, -2, 2), w = rng.floats(256, 0.5, 1.5)
            try check("rmsNorm", "\(rows)×256", t.rmsNorm) { try $0.rmsNorm(x, rows: rows, weight: w, eps: 1e-5) }
        }
        let positions = [0, 1, 17, 300, 4095]
        let inverseFrequencies = (0..<32).map { Float(pow(10_000.0, -2.0 * Double($0) / 64)) }
        let x = rng.floats(positions.count * 4 * 64, -1, 1)
        try check("rope", "5 rows × 4 heads × 64", t.rope) {
            try $0.rope(x, positions: positions, heads: 4, headDim: 64, inverseFrequencies: inverseFrequencies)
        }
        let gate = rng.floats(1000, -6, 6), up = rng.floats(1000, -2, 2)
        try check("swiglu", "1000", t.swiglu) { try $0.swiglu(gate: gate, up: up) }
        let (heads, kvHeads, hd, n) = (8, 2, 64, 150)
        let k = rng.floats(n * kvHeads * hd, -1, 1), v = rng.floats(n * kvHeads * hd, -1, 1)
        for rows in [[149], [0, 1, 63, 64, 149], Array(0..<n)] {
            let q = rng.floats(rows.count * heads * hd, -1, 1)
            try check("attention", "\(rows.count) rows of \(n) positions, \(heads)/\(kvHeads) heads × \(hd)", t.attention) {
                try $0.attention(q: q, k: k, v: v, positions: rows, heads: heads, kvHeads: kvHeads, headDim: hd)
            }
        }
        // Head dim 128 (one K/V head for four query heads), every row of a 150-position prefill.
        let k128 = rng.floats(n * 128, -1, 1), v128 = rng.floats(n * 128, -1, 1), q128 = rng.floats(n * 4 * 128, -1, 1)
        try check("attention", "\(n) rows of \(n) positions, 4/1 heads × 128", t.attention) {
            try $0.attention(q: q128, k: k128, v: v128, positions: Array(0..<n), heads: 4, kvHeads: 1, headDim: 128)
        }
        // Three query heads per K/V head (an odd grouping), 70 rows.
        let k3 = rng.floats(n * 64, -1, 1), v3 = rng.floats(n * 64, -1, 1), q3 = rng.floats(70 * 3 * 64, -1, 1)
        try check("attention", "70 rows of \(n) positions, 3/1 heads × 64", t.attention) {
            try $0.attention(q: q3, k: k3, v: v3, positions: Array(n - 70..<n), heads: 3, kvHeads: 1, headDim: 64)
        }
        // Greedy sampling's argmax, exactly: a vocabulary-sized row that is no multiple of the block, equal largest
        // values (the lowest index wins), NaNs before the largest value and at index 0, a row of -inf, and rows
        // shorter than a block's threads.
        var vocabRows = rng.floats(5 * 128_256, -30, 30)
        for at in [120_000, 77, 5000] { vocabRows[128_256 + at] = 31 }
        vocabRows[2 * 128_256] = .nan
        for at in [3, 64_000, 128_255] { vocabRows[3 * 128_256 + at] = .nan }
        for at in 0..<128_256 { vocabRows[4 * 128_256 + at] = -.infinity }
        for (rows, logits) in [(5, vocabRows), (3, rng.floats(3 * 3, -1, 1) + [1, 1, -1])] {
            try check("argmax", "\(rows) rows × \(logits.count / rows)", 0) { try $0.argmax(logits, rows: rows).map(Float.init) }
        }
        return checks
    }

    /// The checks as a table, one line each.
    public static func report(_ checks: [Check], backend: String) -> String {
        var lines = ["op-by-op vs the reference: \(backend)"]
        for c in checks {
            let pad = String(repeating: " ", count: max(0, 52 - c.op.count - c.shape.count))
            lines.append("  \(c.op) \(c.shape)\(pad) error \(String(format: "%.2e", c.error)) (≤ \(String(format: "%.0e", c.tolerance))) \(c.passed ? "ok" : "FAIL")")
        }
        return lines.joined(separator: "\n")
    }
}

/// SplitMix64: seeded inputs for the harness and the kernel tests.
public struct SplitMix64 {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func float(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24) }
    public mutating func floats(_ count: Int, _ lo: Float, _ hi: Float) -> [Float] { (0..<count).map { _ in float(lo, hi) } }
}
