import X86Intrinsics

/// Dot products of quantized weight rows with int8 activations: 64 byte products per VNNI instruction, exact in
/// int32 within a group, then one fp32 FMA per group with the product of the weight and activation block scales.
/// A row's float operations are the same whether it is computed alone or in a tile of 4 (batch invariance).
public enum Int8Dot {
    /// Q4 weight rows: 64-byte groups of 4 blocks' nibbles, fp32 per-block scale d and offset m (x = d·q + m).
    /// y[t·yStride + o] = Σ W[o]·x[t] (+ bias[o]) for o in `outputs`, t in 0..<tokens.
    @inline(never)
    public static func q4Rows(_ outputs: Range<Int>, tokens: Int, groups: Int, nibbles: UnsafeRawPointer,
                              scales: UnsafePointer<Float>, offsets: UnsafePointer<Float>, x: Int8Activations,
                              bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, yStride: Int) {
        let xq = UnsafeRawPointer(x.q), xd = UnsafeRawPointer(x.scales), xs = UnsafeRawPointer(x.sums)
        for o in outputs {
            let w = nibbles + o * groups * 64
            let d = UnsafeRawPointer(scales + o * groups * 4), m = UnsafeRawPointer(offsets + o * groups * 4)
            let b = bias?[o] ?? 0
            var t = 0
            while t + 4 <= tokens {
                let r = q4Dot4(w: w, d: d, m: m, x: xq + t * x.qStride, xStride: x.qStride,
                               dx: xd + t * x.blockStride * 4, sx: xs + t * x.blockStride * 4, sStride: x.blockStride * 4, groups: groups)
                for k in 0..<4 { y[(t + k) * yStride + o] = r[k] + b }
                t += 4
            }
            while t < tokens {
                y[t * yStride + o] = q4Dot(w: w, d: d, m: m, x: xq + t * x.qStride, dx: xd + t * x.blockStride * 4,
                                           sx: xs + t * x.blockStride * 4, groups: groups) + b
                t += 1
            }
        }
    }

    /// Q8_0 weight rows stored as unsigned bytes w + 128, 64-byte groups of 2 blocks, fp32 per-block scale d:
    /// Σ d·w·x = Σ d·dx·(Σ(w+128)·q) − 128·Σ d·(dx·Σq).
    @inline(never)
    public static func q8Rows(_ outputs: Range<Int>, tokens: Int, groups: Int, bytes: UnsafeRawPointer,
                              scales: UnsafePointer<Float>, x: Int8Activations,
                              bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, yStride: Int) {
        let xq = UnsafeRawPointer(x.q), xd = UnsafeRawPointer(x.scales), xs = UnsafeRawPointer(x.sums)
        for o in outputs {
            let w = bytes + o * groups * 64
            let d = UnsafeRawPointer(scales + o * groups * 2)
            let b = bias?[o] ?? 0
            var t = 0
            while t + 4 <= tokens {
                let r = q8Dot4(w: w, d: d, x: xq + t * x.qStride, xStride: x.qStride,
                               dx: xd + t * x.blockStride * 4, sx: xs + t * x.blockStride * 4, sStride: x.blockStride * 4, groups: groups)
                for k in 0..<4 { y[(t + k) * yStride + o] = r[k] + b }
                t += 4
            }
            while t < tokens {
                y[t * yStride + o] = q8Dot(w: w, d: d, x: xq + t * x.qStride, dx: xd + t * x.blockStride * 4,
                                           sx: xs + t * x.blockStride * 4, groups: groups) + b
                t += 1
            }
        }
    }

    // MARK: - Q4

    @inline(__always)
    static func q4Dot(w: UnsafeRawPointer, d: UnsafeRawPointer, m: UnsafeRawPointer, x: UnsafeRawPointer,
                      dx: UnsafeRawPointer, sx: UnsafeRawPointer, groups: Int) -> Float {
        var acc = SIMD16<Float>(), offset = SIMD4<Float>()
        for g in 0..<groups {
            let wv = w.loadUnaligned(fromByteOffset: g * 64, as: SIMD64<UInt8>.self)
            let (lo, hi) = (sw_low_nibbles(wv), sw_high_nibbles(wv))
            let dg = d.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self)
            let mg = m.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self)
            q4Step(&acc, &offset, lo, hi, dg, mg, x, dx, sx, g)
        }
        return acc.sum() + offset.sum()
    }

    @inline(__always)
    static func q4Dot4(w: UnsafeRawPointer, d: UnsafeRawPointer, m: UnsafeRawPointer, x: UnsafeRawPointer, xStride: Int,
                       dx: UnsafeRawPointer, sx: UnsafeRawPointer, sStride: Int, groups: Int) -> SIMD4<Float> {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        var o0 = SIMD4<Float>(), o1 = SIMD4<Float>(), o2 = SIMD4<Float>(), o3 = SIMD4<Float>()
        for g in 0..<groups {
            let wv = w.loadUnaligned(fromByteOffset: g * 64, as: SIMD64<UInt8>.self)
            let (lo, hi) = (sw_low_nibbles(wv), sw_high_nibbles(wv))
            let dg = d.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self)
            let mg = m.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self)
            q4Step(&a0, &o0, lo, hi, dg, mg, x, dx, sx, g)
            q4Step(&a1, &o1, lo, hi, dg, mg, x + xStride, dx + sStride, sx + sStride, g)
            q4Step(&a2, &o2, lo, hi, dg, mg, x + 2 * xStride, dx + 2 * sStride, sx + 2 * sStride, g)
            q4Step(&a3, &o3, lo, hi, dg, mg, x + 3 * xStride, dx + 3 * sStride, sx + 3 * sStride, g)
        }
        return SIMD4(a0.sum() + o0.sum(), a1.sum() + o1.sum(), a2.sum() + o2.sum(), a3.sum() + o3.sum())
    }

    @inline(__always)
    static func q4Step(_ acc: inout SIMD16<Float>, _ offset: inout SIMD4<Float>, _ lo: SIMD64<UInt8>, _ hi: SIMD64<UInt8>,
                       _ dg: SIMD4<Float>, _ mg: SIMD4<Float>, _ x: UnsafeRawPointer, _ dx: UnsafeRawPointer,
                       _ sx: UnsafeRawPointer, _ g: Int) {
        var i = sw_dpbusd(SIMD16<Int32>(), lo, x.loadUnaligned(fromByteOffset: g * 128, as: SIMD64<Int8>.self))
        i = sw_dpbusd(i, hi, x.loadUnaligned(fromByteOffset: g * 128 + 64, as: SIMD64<Int8>.self))
        acc.addProduct(sw_i32_to_f32(i), sw_spread4(dg * dx.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self)))
        offset.addProduct(mg, sx.loadUnaligned(fromByteOffset: g * 16, as: SIMD4<Float>.self))
    }

    // MARK: - Q8

    @inline(__always)
    static func q8Dot(w: UnsafeRawPointer, d: UnsafeRawPointer, x: UnsafeRawPointer, dx: UnsafeRawPointer,
                      sx: UnsafeRawPointer, groups: Int) -> Float {
        var acc = SIMD16<Float>(), offset = SIMD2<Float>()
        for g in 0..<groups {
            let wv = w.loadUnaligned(fromByteOffset: g * 64, as: SIMD64<UInt8>.self)
            q8Step(&acc, &offset, wv, d.loadUnaligned(fromByteOffset: g * 8, as: SIMD2<Float>.self), x, dx, sx, g)
        }
        return acc.sum() - 128 * offset.sum()
    }

    @inline(__always)
    static func q8Dot4(w: UnsafeRawPointer, d: UnsafeRawPointer, x: UnsafeRawPointer, xStride: Int,
                       dx: UnsafeRawPointer, sx: UnsafeRawPointer, sStride: Int, groups: Int) -> SIMD4<Float> {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        var o0 = SIMD2<Float>(), o1 = SIMD2<Float>(), o2 = SIMD2<Float>(), o3 = SIMD2<Float>()
        for g in 0..<groups {
            let wv = w.loadUnaligned(fromByteOffset: g * 64, as: SIMD64<UInt8>.self)
            let dg = d.loadUnaligned(fromByteOffset: g * 8, as: SIMD2<Float>.self)
            q8Step(&a0, &o0, wv, dg, x, dx, sx, g)
            q8Step(&a1, &o1, wv, dg, x + xStride, dx + sStride, sx + sStride, g)
            q8Step(&a2, &o2, wv, dg, x + 2 * xStride, dx + 2 * sStride, sx + 2 * sStride, g)
            q8Step(&a3, &o3, wv, dg, x + 3 * xStride, dx + 3 * sStride, sx + 3 * sStride, g)
        }
        return SIMD4(a0.sum() - 128 * o0.sum(), a1.sum() - 128 * o1.sum(), a2.sum() - 128 * o2.sum(), a3.sum() - 128 * o3.sum())
    }

    @inline(__always)
    static func q8Step(_ acc: inout SIMD16<Float>, _ offset: inout SIMD2<Float>, _ wv: SIMD64<UInt8>, _ dg: SIMD2<Float>,
                       _ x: UnsafeRawPointer, _ dx: UnsafeRawPointer, _ sx: UnsafeRawPointer, _ g: Int) {
        let i = sw_dpbusd(SIMD16<Int32>(), wv, x.loadUnaligned(fromByteOffset: g * 64, as: SIMD64<Int8>.self))
        acc.addProduct(sw_i32_to_f32(i), sw_spread2(dg * dx.loadUnaligned(fromByteOffset: g * 8, as: SIMD2<Float>.self)))
        offset.addProduct(dg, sx.loadUnaligned(fromByteOffset: g * 8, as: SIMD2<Float>.self))
    }
}
