/// Q8_0 rows repacked like `PackedQ4`: two blocks' 64 weights stored as unsigned bytes w + 128 (sign bit flipped,
/// what the VNNI int8 kernels multiply), read as 16 × UInt32, a byte per lane per shift (k = 0...3), turned into
/// floats by the 2^23 mantissa trick.
struct PackedQ8: @unchecked Sendable {
    let rows: Int
    let blocks: Int
    let groups: Int          // groups of 2 blocks (padded)
    var bytes: [UInt32]      // [rows][groups][16], each byte w + 128
    var scales: [Float]      // [rows][groups·2]

    init(raw: UnsafeRawBufferPointer, rows: Int, inputs: Int, rowOrder: [Int]) {
        self.rows = rows
        blocks = inputs / 32
        groups = (blocks + 1) / 2
        let rowBytes = blocks * 34
        var bytes = [UInt32](repeating: 0, count: rows * groups * 16)
        var scales = [Float](repeating: 0, count: rows * groups * 2)
        for (o, src) in rowOrder.enumerated() {
            for b in 0..<blocks {
                let block = raw.baseAddress! + src * rowBytes + b * 34
                scales[o * groups * 2 + b] = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
                for w in 0..<8 { bytes[(o * groups + b / 2) * 16 + (b % 2) * 8 + w] = (block + 2).loadUnaligned(fromByteOffset: w * 4, as: UInt32.self) ^ 0x8080_8080 }
            }
        }
        (self.bytes, self.scales) = (bytes, scales)
    }

    /// x in lane order: for group g, shift k, lane j holds element 4·(j mod 8) + k of block 2g + j/8.
    static func permute(_ x: UnsafePointer<Float>, blocks: Int, groups: Int, into xp: UnsafeMutablePointer<Float>) {
        for g in 0..<groups {
            for k in 0..<4 {
                for j in 0..<16 {
                    let b = 2 * g + j / 8
                    xp[(g * 4 + k) * 16 + j] = b < blocks ? x[b * 32 + 4 * (j % 8) + k] : 0
                }
            }
        }
    }

    @inline(__always)
    func dot(row: Int, xp: UnsafePointer<Float>, bytes bp: UnsafePointer<UInt32>, scales sc: UnsafePointer<Float>) -> Float {
        let magic = SIMD16<UInt32>(repeating: 0x4B00_0000)
        let mask = SIMD16<UInt32>(repeating: 0xFF)
        let bias = SIMD16<Float>(repeating: 8_388_608 + 128)
        var acc = SIMD16<Float>()
        let words = UnsafeRawPointer(bp + row * groups * 16)
        let x = UnsafeRawPointer(xp)
        for g in 0..<groups {
            let w = words.loadUnaligned(fromByteOffset: g * 64, as: SIMD16<UInt32>.self)
            @inline(__always) func lanes(_ shift: UInt32) -> SIMD16<Float> {
                unsafeBitCast(((w &>> shift) & mask) | magic, to: SIMD16<Float>.self) - bias
            }
            @inline(__always) func xs(_ k: Int) -> SIMD16<Float> {
                x.loadUnaligned(fromByteOffset: (g * 4 + k) * 64, as: SIMD16<Float>.self)
            }
            var partial = lanes(0) * xs(0)
            var other = lanes(8) * xs(1)
            partial.addProduct(lanes(16), xs(2))
            other.addProduct(lanes(24), xs(3))
            partial += other
            let d0 = sc[row * groups * 2 + 2 * g], d1 = sc[row * groups * 2 + 2 * g + 1]
            acc.addProduct(partial, SIMD16<Float>(lowHalf: SIMD8(repeating: d0), highHalf: SIMD8(repeating: d1)))
        }
        return acc.sum()
    }

    /// `dot` for 4 activation rows sharing each group's unpacked bytes; per row the same operations in the same
    /// order as `dot` (batch invariance).
    @inline(__always)
    func dot4(row: Int, xp: UnsafePointer<Float>, xStride: Int, bytes bp: UnsafePointer<UInt32>, scales sc: UnsafePointer<Float>) -> SIMD4<Float> {
        let magic = SIMD16<UInt32>(repeating: 0x4B00_0000)
        let mask = SIMD16<UInt32>(repeating: 0xFF)
        let bias = SIMD16<Float>(repeating: 8_388_608 + 128)
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        let words = UnsafeRawPointer(bp + row * groups * 16)
        let xs4 = (UnsafeRawPointer(xp), UnsafeRawPointer(xp + xStride), UnsafeRawPointer(xp + 2 * xStride), UnsafeRawPointer(xp + 3 * xStride))
        for g in 0..<groups {
            let w = words.loadUnaligned(fromByteOffset: g * 64, as: SIMD16<UInt32>.self)
            @inline(__always) func lanes(_ shift: UInt32) -> SIMD16<Float> {
                unsafeBitCast(((w &>> shift) & mask) | magic, to: SIMD16<Float>.self) - bias
            }
            let l0 = lanes(0), l1 = lanes(8), l2 = lanes(16), l3 = lanes(24)
            let d0 = sc[row * groups * 2 + 2 * g], d1 = sc[row * groups * 2 + 2 * g + 1]
            let scale = SIMD16<Float>(lowHalf: SIMD8(repeating: d0), highHalf: SIMD8(repeating: d1))
            @inline(__always) func step(_ acc: inout SIMD16<Float>, _ x: UnsafeRawPointer) {
                @inline(__always) func xs(_ k: Int) -> SIMD16<Float> { x.loadUnaligned(fromByteOffset: (g * 4 + k) * 64, as: SIMD16<Float>.self) }
                var partial = l0 * xs(0)
                var other = l1 * xs(1)
                partial.addProduct(l2, xs(2))
                other.addProduct(l3, xs(3))
                partial += other
                acc.addProduct(partial, scale)
            }
            step(&a0, xs4.0)
            step(&a1, xs4.1)
            step(&a2, xs4.2)
            step(&a3, xs4.3)
        }
        return SIMD4(a0.sum(), a1.sum(), a2.sum(), a3.sum())
    }
}
