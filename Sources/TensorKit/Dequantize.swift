import ModelFiles

/// Converts ggml-encoded rows to fp32. Block layouts (little-endian):
/// - Q8_0: f16 scale d, 32 × int8 q          → x = d·q
/// - Q4_0: f16 d, 16 bytes of nibbles        → x = d·(q − 8); low nibbles are elements 0–15, high nibbles 16–31
/// - Q4_1: f16 d, f16 m, 16 bytes of nibbles → x = d·q + m; same nibble order
public enum Dequantize {
    /// Dequantizes `count` elements starting at element `start` of a tensor's raw bytes into `out`.
    public static func elements(_ raw: UnsafeRawBufferPointer, type: GGMLType, start: Int, count: Int,
                                into out: UnsafeMutablePointer<Float>) {
        precondition(start % type.blockElements == 0 && count % type.blockElements == 0)
        let base = raw.baseAddress!
        switch type {
        case .f32:
            (base + start * 4).withMemoryRebound(to: Float.self, capacity: count) { out.update(from: $0, count: count) }
        case .f16:
            for i in 0..<count { out[i] = Float(Float16(bitPattern: base.loadUnaligned(fromByteOffset: (start + i) * 2, as: UInt16.self))) }
        case .bf16:
            for i in 0..<count {
                out[i] = Float(bitPattern: UInt32(base.loadUnaligned(fromByteOffset: (start + i) * 2, as: UInt16.self)) << 16)
            }
        case .q8_0:
            for b in 0..<count / 32 {
                let block = base + (start / 32 + b) * 34
                let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
                let q = (block + 2).assumingMemoryBound(to: Int8.self)
                for i in 0..<32 { out[b * 32 + i] = d * Float(q[i]) }
            }
        case .q4_0:
            for b in 0..<count / 32 {
                let block = base + (start / 32 + b) * 18
                let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
                let q = (block + 2).assumingMemoryBound(to: UInt8.self)
                for i in 0..<16 {
                    out[b * 32 + i] = d * Float(Int(q[i] & 0x0F) - 8)
                    out[b * 32 + i + 16] = d * Float(Int(q[i] >> 4) - 8)
                }
            }
        case .q4_1:
            for b in 0..<count / 32 {
                let block = base + (start / 32 + b) * 20
                let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
                let m = Float(Float16(bitPattern: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
                let q = (block + 4).assumingMemoryBound(to: UInt8.self)
                for i in 0..<16 {
                    out[b * 32 + i] = d * Float(q[i] & 0x0F) + m
                    out[b * 32 + i + 16] = d * Float(q[i] >> 4) + m
                }
            }
        }
    }

    /// A whole tensor as fp32.
    public static func tensor(_ store: any TensorStore, _ info: GGUFTensorInfo) -> [Float] {
        let n = info.elementCount
        return [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
            elements(store.bytes(of: info), type: info.type, start: 0, count: n, into: buffer.baseAddress!)
            initialized = n
        }
    }
}
