/// The sampler's passes over a vocabulary row: its largest value and every token's softmax weight e^(x − largest).
/// Written as plain loops of branch-free arithmetic (no libm call, rounding by adding 1.5·2²³) so that the compiler
/// vectorizes them; the scalar `weight` runs the same operations, so it gives the same bits as the loop.
public enum SoftmaxWeights {
    /// The largest value, NaNs passed over (-inf when there is none).
    public static func largest(_ row: UnsafeBufferPointer<Float>) -> Float {
        // Eight running maxima, so that the loop vectorizes (a NaN never compares larger).
        var m = (-Float.infinity, -Float.infinity, -Float.infinity, -Float.infinity,
                 -Float.infinity, -Float.infinity, -Float.infinity, -Float.infinity)
        let n = row.count
        var i = 0
        while i + 8 <= n {
            if row[i] > m.0 { m.0 = row[i] }
            if row[i + 1] > m.1 { m.1 = row[i + 1] }
            if row[i + 2] > m.2 { m.2 = row[i + 2] }
            if row[i + 3] > m.3 { m.3 = row[i + 3] }
            if row[i + 4] > m.4 { m.4 = row[i + 4] }
            if row[i + 5] > m.5 { m.5 = row[i + 5] }
            if row[i + 6] > m.6 { m.6 = row[i + 6] }
            if row[i + 7] > m.7 { m.7 = row[i + 7] }
            i += 8
        }
        var largest = max(max(max(m.0, m.1), max(m.2, m.3)), max(max(m.4, m.5), max(m.6, m.7)))  // no NaN among them
        while i < n {
            if row[i] > largest { largest = row[i] }
            i += 1
        }
        return largest
    }

    /// weights[i] = weight(row[i] − largest) for every i.
    public static func weights(_ row: UnsafeBufferPointer<Float>, largest: Float, into weights: UnsafeMutablePointer<Float>) {
        for i in 0..<row.count { weights[i] = weight(row[i] - largest) }
    }

    /// Tokens per block of `blockSums`.
    public static let blockLength = 64

    /// The sums of consecutive blocks of `blockLength` weights (the last block may be shorter): a full block is
    /// summed in eight lanes (element i in lane i mod 8), which vectorizes, then the lanes pairwise.
    public static func blockSums(_ w: UnsafePointer<Float>, count: Int, into sums: UnsafeMutablePointer<Float>) {
        let full = count / blockLength
        for b in 0..<full {
            let base = w + b * blockLength
            var l = (Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0))
            for i in stride(from: 0, to: blockLength, by: 8) {
                l.0 += base[i]; l.1 += base[i + 1]; l.2 += base[i + 2]; l.3 += base[i + 3]
                l.4 += base[i + 4]; l.5 += base[i + 5]; l.6 += base[i + 6]; l.7 += base[i + 7]
            }
            sums[b] = ((l.0 + l.1) + (l.2 + l.3)) + ((l.4 + l.5) + (l.6 + l.7))
        }
        if full * blockLength < count {
            var s: Float = 0
            for i in full * blockLength..<count { s += w[i] }
            sums[full] = s
        }
    }

    /// The index where the cumulative weight first exceeds `target` (0 ≤ target < the sum of `sums`, which are
    /// `blockSums` of the same weights): whole blocks first, then one by one inside the block that holds it; where
    /// rounding inside the block leaves the target unreached, the block's last index with any weight.
    public static func index(_ w: UnsafePointer<Float>, count: Int, sums: UnsafePointer<Float>, target: Float) -> Int {
        var cumulative: Float = 0
        let blocks = (count + blockLength - 1) / blockLength
        for b in 0..<blocks {
            let next = cumulative + sums[b]
            if target < next {
                let range = b * blockLength..<min((b + 1) * blockLength, count)
                var c = cumulative
                for i in range {
                    c += w[i]
                    if target < c { return i }
                }
                return range.last { w[$0] > 0 } ?? range.upperBound - 1
            }
            cumulative = next
        }
        return (0..<count).last { w[$0] > 0 } ?? count - 1
    }

    /// e^x for x ≤ 0, and 0 for x below −87.3 (where e^x leaves the normal floats), for -inf and for NaN; e^0 is
    /// exactly 1. x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two parts), e^r by Cephes' degree-6 polynomial for
    /// expf, 2^n written into the exponent bits. Within 2 ulp of libm's expf (tested).
    @inline(__always)
    public static func weight(_ x: Float) -> Float {
        let inRange = x >= -87.3  // false for NaN
        let v = inRange ? x : 0
        let shifter: Float = 12_582_912  // 1.5·2²³: adding it rounds to an integer, held in the low mantissa bits
        let shifted = v * 1.442_695_04 + shifter
        let n = shifted - shifter
        let r = v - n * 0.693_359_375 - n * -2.121_944_4e-4
        var p: Float = 1.987_569_15e-4
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let e = p * (r * r) + r + 1
        // The integer n sits in the low bits of `shifted` (biased by 0x4B40_0000); 2^n has exponent bits n + 127.
        let exponent = Int32(bitPattern: shifted.bitPattern) &- 0x4B40_0000 &+ 127
        let scale = Float(bitPattern: UInt32(bitPattern: exponent &<< 23))
        return inRange ? e * scale : 0
    }
}
