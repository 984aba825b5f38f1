import ModelFiles
import Models
import Testing
import TensorKit

/// Quantized matmuls on random ggml blocks, both activation paths, against sums computed here in Double.
@Suite("Quantized matmul kernels (Q4_0, Q4_1, Q8_0; fp32 and int8 activations)")
struct QuantizedMatmulTests {
    /// One tensor held in memory, served like a GGUF file's.
    struct MemoryStore: TensorStore {
        let path = "memory"
        let bytes: [UInt8]
        let info: GGUFTensorInfo
        var tensors: [String: GGUFTensorInfo] { [info.name: info] }
        func bytes(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
            bytes.withUnsafeBytes { UnsafeRawBufferPointer(start: $0.baseAddress!, count: $0.count) }  // kept alive by self
        }
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let type: GGMLType, outputs: Int, inputs: Int
        var testDescription: String { "\(type) \(outputs)×\(inputs)" }
    }

    static let cases = [Case(type: .q4_0, outputs: 70, inputs: 576), Case(type: .q4_1, outputs: 70, inputs: 576),
                        Case(type: .q8_0, outputs: 70, inputs: 576), Case(type: .q4_1, outputs: 33, inputs: 96),
                        Case(type: .q8_0, outputs: 33, inputs: 96)]

    /// Random blocks with small fp16 scales; a fixed seed so a failure reproduces.
    static func matrix(_ c: Case, seed: UInt64) -> (Matrix, [Float]) {
        var rng = SplitMix64(seed: seed)
        let blockBytes = c.type.byteCount(elements: 32)!
        var bytes: [UInt8] = []
        for _ in 0..<(c.outputs * c.inputs / 32) {
            var block = [UInt8](repeating: 0, count: blockBytes)
            func half(_ v: Float, at i: Int) { let b = Float16(v).bitPattern; block[i] = UInt8(b & 0xFF); block[i + 1] = UInt8(b >> 8) }
            half(rng.float(0.001, 0.05), at: 0)
            if c.type == .q4_1 { half(rng.float(-0.2, 0.1), at: 2) }
            for i in (c.type == .q4_1 ? 4 : 2)..<blockBytes { block[i] = UInt8(truncatingIfNeeded: rng.next()) }
            bytes += block
        }
        let info = GGUFTensorInfo(name: "w", dimensions: [c.inputs, c.outputs], type: c.type, offset: 0, byteCount: bytes.count)
        let store = MemoryStore(bytes: bytes, info: info)
        var dense = [Float](repeating: 0, count: c.outputs * c.inputs)
        dense.withUnsafeMutableBufferPointer { Dequantize.elements(store.bytes(of: info), type: c.type, start: 0, count: $0.count, into: $0.baseAddress!) }
        return (Matrix(store: store, info), dense)
    }

    static func activations(rows: Int, inputs: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<rows * inputs).map { i in rng.float(-1, 1) * (i % 97 == 0 ? 8 : 1) }  // a few outliers per row
    }

    static func multiply(_ w: Matrix, _ x: [Float], rows: Int, _ a: ActivationPrecision) -> [Float] {
        var y = [Float](repeating: .nan, count: rows * w.outputs)
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { w.multiply(xb.baseAddress!, rows: rows, into: $0.baseAddress!, activations: a) } }
        return y
    }

    @Test("fp32 activations equal the dequantized product within 1e-5 of the row's magnitude", arguments: cases)
    func fp32Path(_ c: Case) {
        let (w, dense) = Self.matrix(c, seed: 7)
        let rows = 7
        let x = Self.activations(rows: rows, inputs: c.inputs, seed: 11)
        let y = Self.multiply(w, x, rows: rows, .fp32)
        for t in 0..<rows {
            for o in 0..<c.outputs {
                var exact = 0.0, magnitude = 0.0
                for i in 0..<c.inputs {
                    let p = Double(dense[o * c.inputs + i]) * Double(x[t * c.inputs + i])
                    exact += p; magnitude += abs(p)
                }
                #expect(abs(Double(y[t * c.outputs + o]) - exact) <= 1e-5 * magnitude, "row \(t) output \(o)")
            }
        }
    }

    /// The int8 path is exact integer arithmetic on q(x) = round(x·127/max|x|) per block: recomputing that sum here
    /// in Double must agree to float rounding, and the result stays within the rounding bound Σ|w|·dx/2 of the
    /// unquantized product.
    @Test("int8 activations compute exactly the quantized product, within the rounding bound of the exact one",
          .enabled(if: CPUKernels.hasInt8Kernels, "this CPU has no AVX-512 VNNI: the int8 kernels are not used here"),
          arguments: cases)
    func int8Path(_ c: Case) {
        let (w, dense) = Self.matrix(c, seed: 7)
        let rows = 7
        let x = Self.activations(rows: rows, inputs: c.inputs, seed: 11)
        let y = Self.multiply(w, x, rows: rows, .int8)
        for t in 0..<rows {
            var qx = [Float](repeating: 0, count: c.inputs), dx = [Float](repeating: 0, count: c.inputs / 32)
            for b in 0..<c.inputs / 32 {
                let block = x[t * c.inputs + b * 32..<t * c.inputs + b * 32 + 32]
                let amax = block.map(abs).max()!
                dx[b] = amax / 127
                let inverse: Float = amax > 0 ? 127 / amax : 0
                for (k, v) in block.enumerated() { qx[b * 32 + k] = (v * inverse).rounded(.toNearestOrEven) }
            }
            for o in 0..<c.outputs {
                var quantized = 0.0, exact = 0.0, bound = 0.0, magnitude = 0.0
                for i in 0..<c.inputs {
                    let wi = Double(dense[o * c.inputs + i])
                    quantized += wi * Double(qx[i]) * Double(dx[i / 32])
                    exact += wi * Double(x[t * c.inputs + i])
                    bound += abs(wi) * Double(dx[i / 32]) / 2
                    magnitude += abs(wi * Double(qx[i]) * Double(dx[i / 32]))
                }
                let got = Double(y[t * c.outputs + o])
                #expect(abs(got - quantized) <= 1e-5 * magnitude + 1e-6, "row \(t) output \(o): \(got) vs \(quantized)")
                #expect(abs(got - exact) <= bound + 1e-5 * magnitude, "row \(t) output \(o)")
            }
        }
    }

    @Test("a row's result is bit-identical alone and in a batch (tiles of 4 and the rest)", arguments: cases)
    func batchInvariance(_ c: Case) {
        let (w, _) = Self.matrix(c, seed: 3)
        let rows = 7
        let x = Self.activations(rows: rows, inputs: c.inputs, seed: 5)
        for a in [ActivationPrecision.fp32, .int8] {
            let batched = Self.multiply(w, x, rows: rows, a)
            for t in 0..<rows {
                let alone = Self.multiply(w, Array(x[t * c.inputs..<(t + 1) * c.inputs]), rows: 1, a)
                #expect(Array(batched[t * c.outputs..<(t + 1) * c.outputs]) == alone, "\(a) row \(t)")
            }
        }
    }
}
