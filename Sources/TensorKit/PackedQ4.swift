/// Quantized rows repacked at load for Swift SIMD without lane conversions (Swift's integer→float SIMD
/// initializers compile to scalar loops; bit tricks on whole vectors do not):
/// - nibbles of 4 blocks are one 64-byte group, read as 16 × UInt32; shifting a lane by 4·s and masking gives 16
///   4-bit values, which become floats by OR-ing into the mantissa of 2^23 and subtracting 2^23;
/// - the activation row is permuted once per matmul into the same lane order (`permute`), so every group is 8
///   vector FMAs;
/// - per-block scale d and min m are fp32 (Q4_1: x = d·q + m; Q4_0 stores m = −8·d), rows padded to whole groups.
struct PackedQ4: @unchecked Sendable {
    let rows: Int
    let blocks: Int          // real blocks per row
    let groups: Int          // groups of 4 blocks per row (padded)
    var nibbles: [UInt32]    // [rows][groups][16]
    var scales: [Float]      // [rows][groups·4]
    var mins: [Float]        // [rows][groups·4]

    init(raw: UnsafeRawBufferPointer, rows: Int, inputs: Int, type: GGMLTypeTag, rowOrder: [Int]) {
        self.rows = rows
        blocks = inputs / 32
        groups = (blocks + 3) / 4
        let stride = type == .q4_1 ? 20 : 18
        let rowBytes = blocks * stride
        var nibbles = [UInt32](repeating: 0, count: rows * groups * 16)
        var scales = [Float](repeating: 0, count: rows * groups * 4)
        var mins = [Float](repeating: 0, count: rows * groups * 4)
        for (o, src) in rowOrder.enumerated() {
            for b in 0..<blocks {
                let block = raw.baseAddress! + src * rowBytes + b * stride
                let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
                scales[o * groups * 4 + b] = d
                mins[o * groups * 4 + b] = type == .q4_1 ? Float(Float16(bitPattern: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))) : -8 * d
                let q = block + (type == .q4_1 ? 4 : 2)
                for w in 0..<4 { nibbles[(o * groups + b / 4) * 16 + (b % 4) * 4 + w] = q.loadUnaligned(fromByteOffset: w * 4, as: UInt32.self) }
            }
        }
        (self.nibbles, self.scales, self.mins) = (nibbles, scales, mins)
    }

    /// x in the lane order of the packed nibbles: for group g, shift s, lane (4·blk + j) holds element
    /// e(s, j) of block 4g+blk, where e = 4j + s/2 for even s (low nibbles) and 4j + (s−1)/2 + 16 for odd s.
    static func permute(_ x: UnsafePointer<Float>, blocks: Int, groups: Int, into xp: UnsafeMutablePointer<Float>) {
        for g in 0..<groups {
            for s in 0..<8 {
                for blk in 0..<4 {
                    let b = g * 4 + blk
                    for j in 0..<4 {
                        let e = s % 2 == 0 ? 4 * j + s / 2 : 4 * j + (s - 1) / 2 + 16
                        xp[((g * 8 + s) * 16) + blk * 4 + j] = b < blocks ? x[b * 32 + e] : 0
                    }
                }
            }
        }
    }

    /// Σ_i W[row][i]·x[i] given the permuted x and the per-block sums of x (padded with zeros to whole groups).
    /// Shifts are spelled out (constant shifts vectorize; a loop variable does not) and products are fused.
    @inline(__always)
    func dot(row: Int, xp: UnsafePointer<Float>, blockSums: UnsafePointer<Float>,
             nibbles nb: UnsafePointer<UInt32>, scales sc: UnsafePointer<Float>, mins mn: UnsafePointer<Float>) -> Float {
        let magic = SIMD16<UInt32>(repeating: 0x4B00_0000)
        let mask = SIMD16<UInt32>(repeating: 0xF)
        let bias = SIMD16<Float>(repeating: 8_388_608)
        var acc = SIMD16<Float>()
        let words = UnsafeRawPointer(nb + row * groups * 16)
        let x = UnsafeRawPointer(xp)
        @inline(__always) func lanes(_ w: SIMD16<UInt32>, _ shift: UInt32) -> SIMD16<Float> {
            unsafeBitCast(((w &>> shift) & mask) | magic, to: SIMD16<Float>.self) - bias
        }
        @inline(__always) func xs(_ g: Int, _ s: Int) -> SIMD16<Float> {
            x.loadUnaligned(fromByteOffset: (g * 8 + s) * 64, as: SIMD16<Float>.self)
        }
        for g in 0..<groups {
            let w = words.loadUnaligned(fromByteOffset: g * 64, as: SIMD16<UInt32>.self)
            var p0 = lanes(w, 0) * xs(g, 0)
            var p1 = lanes(w, 4) * xs(g, 1)
            p0.addProduct(lanes(w, 8), xs(g, 2))
            p1.addProduct(lanes(w, 12), xs(g, 3))
            p0.addProduct(lanes(w, 16), xs(g, 4))
            p1.addProduct(lanes(w, 20), xs(g, 5))
            p0.addProduct(lanes(w, 24), xs(g, 6))
            p1.addProduct(lanes(w, 28), xs(g, 7))
            let d = UnsafeRawPointer(sc + row * groups * 4 + g * 4).loadUnaligned(as: SIMD4<Float>.self)
            let scale = SIMD16<Float>(lowHalf: SIMD8(lowHalf: SIMD4(repeating: d[0]), highHalf: SIMD4(repeating: d[1])),
                                      highHalf: SIMD8(lowHalf: SIMD4(repeating: d[2]), highHalf: SIMD4(repeating: d[3])))
            acc.addProduct(p0 + p1, scale)
        }
        // Σ_b m_b · Σx_b over the padded blocks, four at a time.
        var offsets = SIMD4<Float>()
        let m = UnsafeRawPointer(mn + row * groups * 4), sums = UnsafeRawPointer(blockSums)
        for g in 0..<groups {
            offsets.addProduct(m.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self),
                               sums.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self))
        }
        return acc.sum() + offsets.sum()
    }
}

extension PackedQ4 {
    /// `dot` for 4 activation rows at once: each group's nibbles are unpacked once and used for all 4 rows, and
    /// every row goes through exactly the operations of `dot`, in the same order, so a row's result does not
    /// depend on whether it was computed alone or in a tile (batch invariance).
    @inline(__always)
    func dot4(row: Int, xp: UnsafePointer<Float>, xStride: Int, blockSums: UnsafePointer<Float>, sumStride: Int,
              nibbles nb: UnsafePointer<UInt32>, scales sc: UnsafePointer<Float>, mins mn: UnsafePointer<Float>) -> SIMD4<Float> {
        let magic = SIMD16<UInt32>(repeating: 0x4B00_0000)
        let mask = SIMD16<UInt32>(repeating: 0xF)
        let bias = SIMD16<Float>(repeating: 8_388_608)
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        let words = UnsafeRawPointer(nb + row * groups * 16)
        let x0 = UnsafeRawPointer(xp), x1 = UnsafeRawPointer(xp + xStride), x2 = UnsafeRawPointer(xp + 2 * xStride), x3 = UnsafeRawPointer(xp + 3 * xStride)
        @inline(__always) func lanes(_ w: SIMD16<UInt32>, _ shift: UInt32) -> SIMD16<Float> {
            unsafeBitCast(((w &>> shift) & mask) | magic, to: SIMD16<Float>.self) - bias
        }
        @inline(__always) func step(_ acc: inout SIMD16<Float>, _ x: UnsafeRawPointer, _ g: Int, _ l: (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>), _ scale: SIMD16<Float>) {
            @inline(__always) func xs(_ s: Int) -> SIMD16<Float> { x.loadUnaligned(fromByteOffset: (g * 8 + s) * 64, as: SIMD16<Float>.self) }
            var p0 = l.0 * xs(0)
            var p1 = l.1 * xs(1)
            p0.addProduct(l.2, xs(2))
            p1.addProduct(l.3, xs(3))
            p0.addProduct(l.4, xs(4))
            p1.addProduct(l.5, xs(5))
            p0.addProduct(l.6, xs(6))
            p1.addProduct(l.7, xs(7))
            acc.addProduct(p0 + p1, scale)
        }
        for g in 0..<groups {
            let w = words.loadUnaligned(fromByteOffset: g * 64, as: SIMD16<UInt32>.self)
            let l = (lanes(w, 0), lanes(w, 4), lanes(w, 8), lanes(w, 12), lanes(w, 16), lanes(w, 20), lanes(w, 24), lanes(w, 28))
            let d = UnsafeRawPointer(sc + row * groups * 4 + g * 4).loadUnaligned(as: SIMD4<Float>.self)
            let scale = SIMD16<Float>(lowHalf: SIMD8(lowHalf: SIMD4(repeating: d[0]), highHalf: SIMD4(repeating: d[1])),
                                      highHalf: SIMD8(lowHalf: SIMD4(repeating: d[2]), highHalf: SIMD4(repeating: d[3])))
            step(&a0, x0, g, l, scale)
            step(&a1, x1, g, l, scale)
            step(&a2, x2, g, l, scale)
            step(&a3, x3, g, l, scale)
        }
        var o0 = SIMD4<Float>(), o1 = SIMD4<Float>(), o2 = SIMD4<Float>(), o3 = SIMD4<Float>()
        let m = UnsafeRawPointer(mn + row * groups * 4)
        let s0 = UnsafeRawPointer(blockSums), s1 = UnsafeRawPointer(blockSums + sumStride)
        let s2 = UnsafeRawPointer(blockSums + 2 * sumStride), s3 = UnsafeRawPointer(blockSums + 3 * sumStride)
        for g in 0..<groups {
            let mg = m.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self)
            o0.addProduct(mg, s0.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self))
            o1.addProduct(mg, s1.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self))
            o2.addProduct(mg, s2.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self))
            o3.addProduct(mg, s3.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self))
        }
        return SIMD4(a0.sum() + o0.sum(), a1.sum() + o1.sum(), a2.sum() + o2.sum(), a3.sum() + o3.sum())
    }
}

enum GGMLTypeTag { case q4_0, q4_1 }
