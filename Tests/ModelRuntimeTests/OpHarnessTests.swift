import Models
import Testing

@Suite("Op-by-op harness: backends against the reference")
struct OpHarnessTests {
    @Test("the CPU backend passes every op at fp32 tolerances")
    func cpu() throws {
        let checks = try OpHarness.run(CPUOps(), tolerances: .fp32)
        #expect(checks.count == 14)
        for c in checks { #expect(c.passed, "\(c.op) \(c.shape): \(c.error)") }
    }

    /// The CPU backend's ops, each one overridable: a backend with one op made wrong.
    class CPUOpsWith: OpBackend {
        let base = CPUOps()
        var name: String { "CPU" }
        func matmul(_ x: [Float], rows: Int, weight: [Float], outputs: Int) throws -> [Float] { try base.matmul(x, rows: rows, weight: weight, outputs: outputs) }
        func rmsNorm(_ x: [Float], rows: Int, weight: [Float], eps: Float) throws -> [Float] { try base.rmsNorm(x, rows: rows, weight: weight, eps: eps) }
        func rope(_ x: [Float], positions: [Int], heads: Int, headDim: Int, inverseFrequencies: [Float]) throws -> [Float] {
            try base.rope(x, positions: positions, heads: heads, headDim: headDim, inverseFrequencies: inverseFrequencies)
        }
        func swiglu(gate: [Float], up: [Float]) throws -> [Float] { try base.swiglu(gate: gate, up: up) }
        func attention(q: [Float], k: [Float], v: [Float], positions: [Int], heads: Int, kvHeads: Int, headDim: Int) throws -> [Float] {
            try base.attention(q: q, k: k, v: v, positions: positions, heads: heads, kvHeads: kvHeads, headDim: headDim)
        }
        func argmax(_ logits: [Float], rows: Int) throws -> [Int] { try base.argmax(logits, rows: rows) }
    }

    /// A backend with one op wrong (RoPE one position off) fails that op and only that one: the harness can fail.
    @Test("a backend with a wrong RoPE fails the RoPE check and only it")
    func catchesAWrongOp() throws {
        final class OffByOne: CPUOpsWith {
            override var name: String { "CPU with RoPE one position off" }
            override func rope(_ x: [Float], positions: [Int], heads: Int, headDim: Int, inverseFrequencies: [Float]) throws -> [Float] {
                try base.rope(x, positions: positions.map { $0 + 1 }, heads: heads, headDim: headDim, inverseFrequencies: inverseFrequencies)
            }
        }
        let failed = try OpHarness.run(OffByOne(), tolerances: .fp32).filter { !$0.passed }.map(\.op)
        #expect(failed == ["rope"])
    }

    /// Greedy sampling's argmax must take the lowest of equal indices and pass over NaNs; a backend that takes the
    /// last of equals fails the argmax check (the vocabulary rows with ties) and nothing else.
    @Test("a backend whose argmax takes the last of equal values fails the argmax check and only it")
    func catchesAWrongArgmax() throws {
        final class LastOfEquals: CPUOpsWith {
            override var name: String { "CPU with argmax ties to the highest index" }
            override func argmax(_ logits: [Float], rows: Int) throws -> [Int] {
                let n = logits.count / rows
                return (0..<rows).map { r in
                    var best = r * n
                    for i in r * n..<(r + 1) * n where logits[i] >= logits[best] { best = i }
                    return best - r * n
                }
            }
        }
        let failed = try OpHarness.run(LastOfEquals(), tolerances: .fp32).filter { !$0.passed }.map(\.op)
        #expect(failed == ["argmax", "argmax"])
    }

    @Test("Logits.argmax: the first of equal largest values, NaNs passed over, a NaN first kept")
    func argmaxRule() {
        #expect(Logits.argmax([0.1, 2, 2, -1] as [Float]) == 1)
        #expect(Logits.argmax([Float.nan, 5, 7] as [Float]) == 0)
        #expect(Logits.argmax([1, Float.nan, 7, .nan, 7] as [Float]) == 2)
        #expect(Logits.argmax([-Float.infinity, -.infinity] as [Float]) == 0)
        #expect(Logits.argmax(([9, 3, 4, 4] as [Float])[1...]) == 1)
    }
}
