import Foundation
import Int8Kernels
import ModelFiles

/// A weight matrix [outputs × inputs], row-major, either fp32 or kept in its ggml block encoding (Q4_0, Q4_1,
/// Q8_0: rows are whole blocks, so a row is dequantized on the fly inside the dot product).
public struct Matrix: @unchecked Sendable {
    public let outputs: Int
    public let inputs: Int
    public let type: GGMLType
    /// Owned storage: fp32 values, or the raw block bytes.
    let floats: [Float]
    let blocks: [UInt8]
    let q4: PackedQ4?
    let q8: PackedQ8?

    public var rowBytes: Int { type.byteCount(elements: inputs)! }
    public var byteCount: Int { type == .f32 ? floats.count * 4 : blocks.count }

    public init(fp32 values: [Float], outputs: Int, inputs: Int) {
        precondition(values.count == outputs * inputs)
        (self.outputs, self.inputs, type, floats, blocks, q4, q8) = (outputs, inputs, .f32, values, [], nil, nil)
    }

    /// Keeps Q4_0/Q4_1/Q8_0 rows as they are (optionally reordered); other types become fp32.
    public init(store: any TensorStore, _ info: GGUFTensorInfo, rowOrder: [Int]? = nil, keepQuantized: Bool = true) {
        let inputs = info.dimensions[0]
        let outputs = info.dimensions.count > 1 ? info.dimensions[1] : 1
        self.inputs = inputs
        self.outputs = outputs
        let raw = store.bytes(of: info)
        let order = rowOrder ?? Array(0..<outputs)
        if keepQuantized && [.q4_0, .q4_1, .q8_0].contains(info.type) {
            type = info.type
            let rb = info.type.byteCount(elements: inputs)!
            var bytes = [UInt8](repeating: 0, count: outputs * rb)
            bytes.withUnsafeMutableBytes { dst in
                for (o, src) in order.enumerated() {
                    dst.baseAddress!.advanced(by: o * rb).copyMemory(from: raw.baseAddress!.advanced(by: src * rb), byteCount: rb)
                }
            }
            blocks = bytes
            floats = []
            switch info.type {
            case .q8_0:
                q8 = PackedQ8(raw: raw, rows: outputs, inputs: inputs, rowOrder: order)
                q4 = nil
            default:
                q4 = PackedQ4(raw: raw, rows: outputs, inputs: inputs, type: info.type == .q4_1 ? .q4_1 : .q4_0, rowOrder: order)
                q8 = nil
            }
        } else {
            q4 = nil
            q8 = nil
            type = .f32
            var values = [Float](repeating: 0, count: outputs * inputs)
            values.withUnsafeMutableBufferPointer { out in
                for (o, src) in order.enumerated() {
                    Dequantize.elements(raw, type: info.type, start: src * inputs, count: inputs, into: out.baseAddress! + o * inputs)
                }
            }
            floats = values
            blocks = []
        }
    }

    /// Row `o` as fp32 (embedding lookups).
    public func row(_ o: Int, into out: UnsafeMutablePointer<Float>) {
        if type == .f32 {
            floats.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + o * inputs, count: inputs) }
        } else {
            blocks.withUnsafeBytes { raw in
                Dequantize.elements(UnsafeRawBufferPointer(rebasing: raw[o * rowBytes..<(o + 1) * rowBytes]), type: type,
                                    start: 0, count: inputs, into: out)
            }
        }
    }

    /// y[t][o] = Σ_i x[t][i]·W[o][i] (+ bias[o]). Each output element is one dot product with a fixed reduction
    /// order, whatever `rows` is: results do not depend on batch composition.
    /// Quantized weights meet int8 activations (`.int8`, where the CPU has VNNI) or fp32 activations (`.fp32`).
    /// `scratch`: working memory to reuse across the matmuls of a step (a temporary one when nil).
    public func multiply(_ x: UnsafePointer<Float>, rows: Int, bias: UnsafePointer<Float>? = nil, into y: UnsafeMutablePointer<Float>,
                         activations: ActivationPrecision = .default, scratch: MatmulScratch? = nil) {
        if type != .f32 && activations == .int8 && CPUKernels.hasInt8Kernels {
            multiplyInt8(x, rows: rows, bias: bias, into: y, scratch: scratch ?? MatmulScratch())
            return
        }
        if type == .f32 {
            floats.withUnsafeBufferPointer { w in
                CPUKernels.matmul(x, rows: rows, inputs: inputs, w.baseAddress!, outputs: outputs, bias: bias, into: y)
            }
            return
        }
        if let q8 { multiplyQ8(q8, x, rows: rows, bias: bias, into: y) } else if let q4 { multiplyQ4(q4, x, rows: rows, bias: bias, into: y) }
    }

    private func multiplyQ4(_ p: PackedQ4, _ x: UnsafePointer<Float>, rows: Int, bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        let (n, m) = (inputs, outputs)
        var xp = [Float](repeating: 0, count: rows * p.groups * 128)
        var sums = [Float](repeating: 0, count: rows * p.groups * 4)  // padded with zeros to whole groups
        for t in 0..<rows {
            xp.withUnsafeMutableBufferPointer { PackedQ4.permute(x + t * n, blocks: p.blocks, groups: p.groups, into: $0.baseAddress! + t * p.groups * 128) }
            for b in 0..<p.blocks {
                var s: Float = 0
                for i in 0..<32 { s += x[t * n + b * 32 + i] }
                sums[t * p.groups * 4 + b] = s
            }
        }
        let chunk = 32
        xp.withUnsafeBufferPointer { xpb in sums.withUnsafeBufferPointer { sb in
        p.nibbles.withUnsafeBufferPointer { nb in p.scales.withUnsafeBufferPointer { sc in p.mins.withUnsafeBufferPointer { mn in
            let (xs, ss, ns, cs, ms) = (UnsafeSendable(xpb.baseAddress!), UnsafeSendable(sb.baseAddress!), UnsafeSendable(nb.baseAddress!),
                                        UnsafeSendable(sc.baseAddress!), UnsafeSendable(mn.baseAddress!))
            let ys = UnsafeSendable(UnsafePointer(y)), bs = bias.map { UnsafeSendable($0) }
            CPUKernels.parallelFor((m + chunk - 1) / chunk) { c in
                let y = UnsafeMutablePointer(mutating: ys.pointer)
                for o in c * chunk..<min(m, (c + 1) * chunk) {
                    let b = bs.map { $0.pointer[o] } ?? 0
                    var t = 0
                    while t + 4 <= rows {  // tiles of 4 rows share the unpacked weights; same math per row
                        let r = p.dot4(row: o, xp: xs.pointer + t * p.groups * 128, xStride: p.groups * 128,
                                       blockSums: ss.pointer + t * p.groups * 4, sumStride: p.groups * 4,
                                       nibbles: ns.pointer, scales: cs.pointer, mins: ms.pointer)
                        for k in 0..<4 { y[(t + k) * m + o] = r[k] + b }
                        t += 4
                    }
                    while t < rows {
                        y[t * m + o] = p.dot(row: o, xp: xs.pointer + t * p.groups * 128, blockSums: ss.pointer + t * p.groups * 4,
                                             nibbles: ns.pointer, scales: cs.pointer, mins: ms.pointer) + b
                        t += 1
                    }
                }
            }
        } } } } }
    }

    private func multiplyQ8(_ p: PackedQ8, _ x: UnsafePointer<Float>, rows: Int, bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        let (n, m) = (inputs, outputs)
        var xp = [Float](repeating: 0, count: rows * p.groups * 64)
        for t in 0..<rows {
            xp.withUnsafeMutableBufferPointer { PackedQ8.permute(x + t * n, blocks: p.blocks, groups: p.groups, into: $0.baseAddress! + t * p.groups * 64) }
        }
        let chunk = 64
        xp.withUnsafeBufferPointer { xpb in p.bytes.withUnsafeBufferPointer { bb in p.scales.withUnsafeBufferPointer { sc in
            let (xs, bs8, cs) = (UnsafeSendable(xpb.baseAddress!), UnsafeSendable(bb.baseAddress!), UnsafeSendable(sc.baseAddress!))
            let ys = UnsafeSendable(UnsafePointer(y)), bs = bias.map { UnsafeSendable($0) }
            CPUKernels.parallelFor((m + chunk - 1) / chunk) { c in
                let y = UnsafeMutablePointer(mutating: ys.pointer)
                for o in c * chunk..<min(m, (c + 1) * chunk) {
                    let b = bs.map { $0.pointer[o] } ?? 0
                    var t = 0
                    while t + 4 <= rows {
                        let r = p.dot4(row: o, xp: xs.pointer + t * p.groups * 64, xStride: p.groups * 64, bytes: bs8.pointer, scales: cs.pointer)
                        for k in 0..<4 { y[(t + k) * m + o] = r[k] + b }
                        t += 4
                    }
                    while t < rows {
                        y[t * m + o] = p.dot(row: o, xp: xs.pointer + t * p.groups * 64, bytes: bs8.pointer, scales: cs.pointer) + b
                        t += 1
                    }
                }
            }
        } } }
    }
}

extension Matrix {
    /// Quantizes the activation rows to int8 blocks once, then every thread runs the VNNI row kernels over its
    /// share of the output rows (the same per-row arithmetic whatever the number of rows: batch invariance).
    private func multiplyInt8(_ x: UnsafePointer<Float>, rows: Int, bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>,
                              scratch: MatmulScratch) {
        let layout: Int8Layout = q4 != nil ? .q4 : .q8
        let groups = q4?.groups ?? q8!.groups
        let blockStride = groups * layout.blocksPerGroup, qStride = groups * layout.blocksPerGroup * 32
        // [rows × blockStride] scales, the same for sums, then [rows × qStride] int8 values.
        let memory = scratch.reserve(2 * rows * blockStride * 4 + rows * qStride)
        let floats = memory.bindMemory(to: Float.self, capacity: 2 * rows * blockStride)
        let q = (memory + 2 * rows * blockStride * 4).bindMemory(to: Int8.self, capacity: rows * qStride)
        Int8Quantizer.quantize(x, rows: rows, inputs: inputs, layout: layout, q: q, qStride: qStride,
                               scales: floats, sums: floats + rows * blockStride, blockStride: blockStride)
        let act = Int8Activations(q: q, scales: floats, sums: floats + rows * blockStride, qStride: qStride, blockStride: blockStride)
        let m = outputs, chunk = 32
        let ys = UnsafeSendable(UnsafePointer(y)), bs = bias.map { UnsafeSendable($0) }
        if let q4 {
            q4.nibbles.withUnsafeBufferPointer { nb in q4.scales.withUnsafeBufferPointer { sc in q4.mins.withUnsafeBufferPointer { mn in
                let (w, d, o) = (UnsafeSendable(nb.baseAddress!), UnsafeSendable(sc.baseAddress!), UnsafeSendable(mn.baseAddress!))
                CPUKernels.parallelFor((m + chunk - 1) / chunk) { c in
                    Int8Dot.q4Rows(c * chunk..<min(m, (c + 1) * chunk), tokens: rows, groups: q4.groups, nibbles: UnsafeRawPointer(w.pointer),
                                   scales: d.pointer, offsets: o.pointer, x: act, bias: bs?.pointer,
                                   y: UnsafeMutablePointer(mutating: ys.pointer), yStride: m)
                }
            } } }
        } else if let q8 {
            q8.bytes.withUnsafeBufferPointer { bb in q8.scales.withUnsafeBufferPointer { sc in
                let (w, d) = (UnsafeSendable(bb.baseAddress!), UnsafeSendable(sc.baseAddress!))
                CPUKernels.parallelFor((m + chunk - 1) / chunk) { c in
                    Int8Dot.q8Rows(c * chunk..<min(m, (c + 1) * chunk), tokens: rows, groups: q8.groups, bytes: UnsafeRawPointer(w.pointer),
                                   scales: d.pointer, x: act, bias: bs?.pointer,
                                   y: UnsafeMutablePointer(mutating: ys.pointer), yStride: m)
                }
            } }
        }
    }
}

/// What quantized weights are multiplied with: activations quantized to int8 per block of 32 (llama.cpp's
/// approach: integer dot products, fastest; small extra rounding) or kept fp32 (the reference path).
public enum ActivationPrecision: Sendable {
    case int8, fp32

    /// `SWIFTWISE_ACTIVATIONS=fp32` selects the fp32 path for a whole process; int8 otherwise.
    public static let `default`: ActivationPrecision =
        ProcessInfo.processInfo.environment["SWIFTWISE_ACTIVATIONS"] == "fp32" ? .fp32 : .int8
}

/// Dot products of one quantized row with an fp32 vector, dequantizing 32 weights at a time in registers.
enum QuantizedDot {
    @inline(__always)
    static func nibbles(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        let q = p.loadUnaligned(as: SIMD16<UInt8>.self)
        return (SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q & 0x0F)), SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q &>> 4)))
    }

    @inline(__always)
    static func load(_ x: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
        UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
    }

    static func q4_1(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD16<Float>()
        var offset: Float = 0
        for b in 0..<blocks {
            let block = row + b * 20
            let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
            let m = Float(Float16(bitPattern: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            let (lo, hi) = nibbles(block + 4)
            acc += (lo * load(x, b * 32) + hi * load(x, b * 32 + 16)) * d
            offset += m * xsum[b]
        }
        return acc.sum() + offset
    }

    static func q4_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD16<Float>()
        for b in 0..<blocks {
            let block = row + b * 18
            let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
            let (lo, hi) = nibbles(block + 2)
            acc += ((lo - 8) * load(x, b * 32) + (hi - 8) * load(x, b * 32 + 16)) * d
        }
        return acc.sum()
    }

    static func q8_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD16<Float>()
        for b in 0..<blocks {
            let block = row + b * 34
            let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
            let q0 = (block + 2).loadUnaligned(as: SIMD16<Int8>.self), q1 = (block + 18).loadUnaligned(as: SIMD16<Int8>.self)
            let f0 = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q0)), f1 = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q1))
            acc += (f0 * load(x, b * 32) + f1 * load(x, b * 32 + 16)) * d
        }
        return acc.sum()
    }
}
