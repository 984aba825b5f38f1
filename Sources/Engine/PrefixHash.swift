/// Chained hashes of full KV blocks for prefix caching: block k's hash covers its tokens and block k−1's hash, so
/// equal hashes mean equal prefixes (verified against the stored tokens on every hit). A fixed function, not
/// Swift's seeded `Hasher`, so the same prompt hashes the same in every process.
public enum PrefixHash {
    public static let root: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inline(__always)
    static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0 &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public static func hash(parent: UInt64, tokens: ArraySlice<Int>) -> UInt64 {
        var h = mix(parent)
        for t in tokens { h = mix(h ^ UInt64(bitPattern: Int64(t))) }
        return h
    }

    /// The chained hashes of every full block of `tokens`.
    public static func blockHashes(_ tokens: [Int], blockSize: Int) -> [UInt64] {
        var hashes: [UInt64] = []
        var parent = root
        var start = 0
        while start + blockSize <= tokens.count {
            parent = hash(parent: parent, tokens: tokens[start..<start + blockSize])
            hashes.append(parent)
            start += blockSize
        }
        return hashes
    }
}
