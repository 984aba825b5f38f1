import X86Intrinsics

/// Activation rows quantized to int8 in blocks of 32 (as llama.cpp's q8_1): q = round(x / dx) with
/// dx = max|x| / 127, plus per block dx and dx·Σq (what a weight block's offset term multiplies).
/// `q` is in the byte order of the weight format it will meet (`Int8Layout`); blocks past the real ones are zero.
public struct Int8Activations: @unchecked Sendable {
    public let q: UnsafePointer<Int8>
    public let scales: UnsafePointer<Float>
    public let sums: UnsafePointer<Float>
    /// Bytes of `q` and floats of `scales`/`sums` per row.
    public let qStride: Int
    public let blockStride: Int

    public init(q: UnsafePointer<Int8>, scales: UnsafePointer<Float>, sums: UnsafePointer<Float>, qStride: Int, blockStride: Int) {
        (self.q, self.scales, self.sums, self.qStride, self.blockStride) = (q, scales, sums, qStride, blockStride)
    }
}

/// Where element e of block b lands in a quantized activation row.
public enum Int8Layout: Sendable {
    /// Groups of 4 blocks, 128 bytes: the first halves (elements 0..<16) of the 4 blocks, then their second halves,
    /// matching Q4 nibbles (low nibbles hold elements 0..<16 of a block, high nibbles 16..<32).
    case q4
    /// Blocks in order (Q8_0 bytes).
    case q8

    public var blocksPerGroup: Int { self == .q4 ? 4 : 2 }
}

public enum Int8Quantizer {
    /// Quantizes `rows` rows of `inputs` floats (a multiple of 32) into `q` (rows × qStride bytes) and
    /// `scales`/`sums` (rows × blockStride floats); padding up to the strides is zeroed.
    @inline(never)
    public static func quantize(_ x: UnsafePointer<Float>, rows: Int, inputs: Int, layout: Int8Layout,
                                q: UnsafeMutablePointer<Int8>, qStride: Int, scales: UnsafeMutablePointer<Float>,
                                sums: UnsafeMutablePointer<Float>, blockStride: Int) {
        let blocks = inputs / 32
        for t in 0..<rows {
            let row = UnsafeRawPointer(x + t * inputs)
            let qr = q + t * qStride
            qr.initialize(repeating: 0, count: qStride)
            (scales + t * blockStride).initialize(repeating: 0, count: blockStride)
            (sums + t * blockStride).initialize(repeating: 0, count: blockStride)
            for b in 0..<blocks {
                let v0 = row.loadUnaligned(fromByteOffset: b * 128, as: SIMD16<Float>.self)
                let v1 = row.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
                let amax = sw_abs_max(v0, v1)
                let dx = amax / 127
                let inverse: Float = amax > 0 ? 127 / amax : 0
                let r0 = sw_f32_round_i32(v0 * inverse), r1 = sw_f32_round_i32(v1 * inverse)
                scales[t * blockStride + b] = dx
                sums[t * blockStride + b] = dx * Float(sw_sum_i32(r0, r1))
                let (first, second): (Int, Int)
                switch layout {
                case .q4: (first, second) = ((b / 4) * 128 + (b % 4) * 16, (b / 4) * 128 + 64 + (b % 4) * 16)
                case .q8: (first, second) = (b * 32, b * 32 + 16)
                }
                UnsafeMutableRawPointer(qr + first).storeBytes(of: sw_i32_to_i8(r0), as: SIMD16<Int8>.self)
                UnsafeMutableRawPointer(qr + second).storeBytes(of: sw_i32_to_i8(r1), as: SIMD16<Int8>.self)
            }
        }
    }
}
