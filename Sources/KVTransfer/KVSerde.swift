import KVStore
import NIOCore

/// Where a chunk's KV lives in a larger [2][layers][tokens][kvDim] fp32 buffer: tokens `start ..< start + count`.
struct ChunkView {
    let base: UnsafeMutablePointer<Float>
    let layers: Int
    let kvDim: Int
    let bufferTokens: Int
    let start: Int
    let count: Int

    /// The `count × kvDim` floats of K (side 0) or V (side 1) of one layer.
    @inline(__always)
    func rows(side: Int, layer: Int) -> UnsafeMutablePointer<Float> {
        base + ((side * layers + layer) * bufferTokens + start) * kvDim
    }
}

/// How a chunk travels to the store (`remote_serde`). `decode` returns false for an object that does not fit
/// the expected shape: the caller counts it and treats it as a miss.
protocol KVSerde: Sendable {
    func encode(_ chunk: ChunkView) -> StoredObject
    func decode(_ object: StoredObject, into chunk: ChunkView) -> Bool
}

/// LMCache's `naive` serde: the raw fp32 tensor [2, L, T, H_kv·D], fmt KV_BLOB (1), dtype float32 (4).
struct NaiveSerde: KVSerde {
    static let fmt: Int32 = 1, dtype: Int32 = 4

    func encode(_ chunk: ChunkView) -> StoredObject {
        let rowBytes = chunk.count * chunk.kvDim * 4
        var buffer = ByteBufferAllocator().buffer(capacity: 2 * chunk.layers * rowBytes)
        for side in 0..<2 {
            for layer in 0..<chunk.layers {
                buffer.writeBytes(UnsafeRawBufferPointer(start: chunk.rows(side: side, layer: layer), count: rowBytes))
            }
        }
        let shape = (Int32(2), Int32(chunk.layers), Int32(chunk.count), Int32(chunk.kvDim))
        return StoredObject(metadata: ObjectMetadata(fmt: Self.fmt, dtype: Self.dtype, shape: shape), payload: buffer)
    }

    func decode(_ object: StoredObject, into chunk: ChunkView) -> Bool {
        let m = object.metadata
        let rowBytes = chunk.count * chunk.kvDim * 4
        guard m.fmt == Self.fmt, m.dtype == Self.dtype, m.shape == (2, Int32(chunk.layers), Int32(chunk.count), Int32(chunk.kvDim)),
              object.payload.readableBytes == 2 * chunk.layers * rowBytes else { return false }
        object.payload.withUnsafeReadableBytes { raw in
            var offset = 0
            for side in 0..<2 {
                for layer in 0..<chunk.layers {
                    UnsafeMutableRawPointer(chunk.rows(side: side, layer: layer)).copyMemory(from: raw.baseAddress! + offset, byteCount: rowBytes)
                    offset += rowBytes
                }
            }
        }
        return true
    }
}

/// KIVI-style int8 serde: K quantized per channel (one scale per layer and channel, over the chunk's tokens),
/// V per token (one scale per layer and token), symmetric, round to nearest. fmt BINARY_BUFFER (3), dtype uint8
/// (6), shape [2, L, T, H_kv·D]; payload (docs/kv-transfer.md):
///   K scales f32 [L][kvDim] | V scales f32 [L][T] | K int8 [L][T][kvDim] | V int8 [L][T][kvDim]
struct KiviSerde: KVSerde {
    static let fmt: Int32 = 3, dtype: Int32 = 6

    static func payloadBytes(layers: Int, tokens: Int, kvDim: Int) -> Int {
        4 * layers * kvDim + 4 * layers * tokens + 2 * layers * tokens * kvDim
    }

    func encode(_ chunk: ChunkView) -> StoredObject {
        let L = chunk.layers, T = chunk.count, C = chunk.kvDim
        var kScales = [Float](repeating: 0, count: L * C), vScales = [Float](repeating: 0, count: L * T)
        var kq = [Int8](repeating: 0, count: L * T * C), vq = [Int8](repeating: 0, count: L * T * C)
        for l in 0..<L {
            let k = chunk.rows(side: 0, layer: l), v = chunk.rows(side: 1, layer: l)
            for c in 0..<C {
                var m: Float = 0
                for t in 0..<T { m = max(m, abs(k[t * C + c])) }
                let scale = m > 0 ? m / 127 : 1
                kScales[l * C + c] = scale
                for t in 0..<T { kq[(l * T + t) * C + c] = Self.quantize(k[t * C + c] / scale) }
            }
            for t in 0..<T {
                var m: Float = 0
                for c in 0..<C { m = max(m, abs(v[t * C + c])) }
                let scale = m > 0 ? m / 127 : 1
                vScales[l * T + t] = scale
                for c in 0..<C { vq[(l * T + t) * C + c] = Self.quantize(v[t * C + c] / scale) }
            }
        }
        var buffer = ByteBufferAllocator().buffer(capacity: Self.payloadBytes(layers: L, tokens: T, kvDim: C))
        _ = kScales.withUnsafeBytes { buffer.writeBytes($0) }
        _ = vScales.withUnsafeBytes { buffer.writeBytes($0) }
        _ = kq.withUnsafeBytes { buffer.writeBytes($0) }
        _ = vq.withUnsafeBytes { buffer.writeBytes($0) }
        return StoredObject(metadata: ObjectMetadata(fmt: Self.fmt, dtype: Self.dtype, shape: (2, Int32(L), Int32(T), Int32(C))),
                            payload: buffer)
    }

    @inline(__always)
    static func quantize(_ x: Float) -> Int8 { Int8(max(-127, min(127, x.rounded(.toNearestOrEven)))) }

    func decode(_ object: StoredObject, into chunk: ChunkView) -> Bool {
        let L = chunk.layers, T = chunk.count, C = chunk.kvDim
        let m = object.metadata
        guard m.fmt == Self.fmt, m.dtype == Self.dtype, m.shape == (2, Int32(L), Int32(T), Int32(C)),
              object.payload.readableBytes == Self.payloadBytes(layers: L, tokens: T, kvDim: C) else { return false }
        return object.payload.withUnsafeReadableBytes { raw in
            let kScales = raw.baseAddress!.assumingMemoryBound(to: Float.self)
            let vScales = kScales + L * C
            let kq = UnsafeRawPointer(vScales + L * T).assumingMemoryBound(to: Int8.self)
            let vq = kq + L * T * C
            for l in 0..<L {
                let k = chunk.rows(side: 0, layer: l), v = chunk.rows(side: 1, layer: l)
                for t in 0..<T {
                    let vs = vScales[l * T + t]
                    for c in 0..<C {
                        k[t * C + c] = Float(kq[(l * T + t) * C + c]) * kScales[l * C + c]
                        v[t * C + c] = Float(vq[(l * T + t) * C + c]) * vs
                    }
                }
            }
            return true
        }
    }
}
