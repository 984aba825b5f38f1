import KVStore
import NIOCore
import Testing
@testable import KVTransfer

@Suite("KV transfer: keys, payloads, config")
struct KVTransferUnitTests {
    @Test("chunk hashes match mission.md's test vectors; the key format is LMCache's")
    func chunkHashVectors() {
        let keys = ChunkKeys(modelName: "smol", chunkSize: 32)
        let hashes = keys.hashes(Array(1...64))
        #expect(hashes == ["86cec0ce6ef740dacace6e1509a4d141e8737fc5e8f6fe9136eabc052b305e12",
                           "562edb971b886d60d66cb1e6706aac246c6a0831efd2fc92ae1eb8b08c8f464a"])
        #expect(keys.key(hashes[0]) == "vllm@smol@1@0@86cec0ce6ef740dacace6e1509a4d141e8737fc5e8f6fe9136eabc052b305e12")
        // The last partial chunk is hashed too, chained on the previous one.
        let partial = keys.hashes(Array(1...70))
        #expect(partial.count == 3 && Array(partial[0..<2]) == hashes)
        #expect(keys.range(chunk: 2, of: 70) == 64..<70)
        // A different first chunk changes every later hash.
        #expect(keys.hashes([0] + Array(2...64))[1] != hashes[1])
    }

    private func sample(layers: Int, tokens: Int, kvDim: Int) -> [Float] {
        var state: UInt32 = 12345
        return (0..<2 * layers * tokens * kvDim).map { i in
            state = state &* 1_664_525 &+ 1_013_904_223
            return (Float(state >> 8) / Float(1 << 24) - 0.5) * Float(1 + i % 7)
        }
    }

    @Test("naive payload: [2, L, T, H·D] fp32, header metadata, exact round trip of a chunk cut from a longer buffer")
    func naiveRoundTrip() {
        let (L, P, C) = (3, 10, 8)
        var whole = sample(layers: L, tokens: P, kvDim: C)
        let object = whole.withUnsafeMutableBufferPointer { b in
            NaiveSerde().encode(ChunkView(base: b.baseAddress!, layers: L, kvDim: C, bufferTokens: P, start: 4, count: 5))
        }
        #expect(object.metadata.fmt == 1 && object.metadata.dtype == 4)
        #expect(object.metadata.shape == (2, 3, 5, 8))
        #expect(object.payload.readableBytes == 2 * L * 5 * C * 4)
        // Payload order: K layer 0 tokens 4..<9, K layer 1, ..., V layer 0, ...
        let first = object.payload.getBytes(at: 0, length: 4)!
        #expect(first.withUnsafeBytes { $0.load(as: Float.self) } == whole[(0 * P + 4) * C])
        var out = [Float](repeating: 0, count: 2 * L * 5 * C)
        let ok = out.withUnsafeMutableBufferPointer { b in
            NaiveSerde().decode(object, into: ChunkView(base: b.baseAddress!, layers: L, kvDim: C, bufferTokens: 5, start: 0, count: 5))
        }
        #expect(ok)
        for row in 0..<2 * L {
            #expect(Array(out[row * 5 * C..<(row + 1) * 5 * C]) == Array(whole[(row * P + 4) * C..<(row * P + 9) * C]))
        }
    }

    @Test("a chunk whose shape, dtype or length does not fit the model is refused")
    func mismatchedChunk() {
        let (L, T, C) = (2, 4, 8)
        var data = sample(layers: L, tokens: T, kvDim: C)
        let object = data.withUnsafeMutableBufferPointer { b in
            NaiveSerde().encode(ChunkView(base: b.baseAddress!, layers: L, kvDim: C, bufferTokens: T, start: 0, count: T))
        }
        var out = [Float](repeating: 0, count: 2 * 3 * T * C)
        out.withUnsafeMutableBufferPointer { b in
            // Another model (3 layers), or fewer tokens than the chunk should hold.
            #expect(!NaiveSerde().decode(object, into: ChunkView(base: b.baseAddress!, layers: 3, kvDim: C, bufferTokens: T, start: 0, count: T)))
            #expect(!NaiveSerde().decode(object, into: ChunkView(base: b.baseAddress!, layers: L, kvDim: C, bufferTokens: T, start: 0, count: T - 1)))
            var truncated = object
            truncated.payload.moveWriterIndex(to: object.payload.writerIndex - 4)
            #expect(!NaiveSerde().decode(truncated, into: ChunkView(base: b.baseAddress!, layers: L, kvDim: C, bufferTokens: T, start: 0, count: T)))
            #expect(!KiviSerde().decode(object, into: ChunkView(base: b.baseAddress!, layers: L, kvDim: C, bufferTokens: T, start: 0, count: T)))
        }
    }

    @Test("kivi int8: per-channel K and per-token V scales; every value within half a quantization step")
    func kiviBounds() {
        let (L, T, C) = (2, 16, 32)
        var data = sample(layers: L, tokens: T, kvDim: C)
        let view = { (b: UnsafeMutableBufferPointer<Float>) in ChunkView(base: b.baseAddress!, layers: L, kvDim: C, bufferTokens: T, start: 0, count: T) }
        let object = data.withUnsafeMutableBufferPointer { KiviSerde().encode(view($0)) }
        #expect(object.metadata.fmt == 3 && object.metadata.dtype == 6)
        #expect(object.payload.readableBytes == KiviSerde.payloadBytes(layers: L, tokens: T, kvDim: C))
        #expect(object.payload.readableBytes * 3 < 2 * L * T * C * 4)  // under a third of naive's bytes
        var out = [Float](repeating: .nan, count: data.count)
        #expect(out.withUnsafeMutableBufferPointer { KiviSerde().decode(object, into: view($0)) })
        for l in 0..<L {
            for c in 0..<C {  // K: scale per (layer, channel)
                let values = (0..<T).map { data[(l * T + $0) * C + c] }
                let step = values.map(abs).max()! / 127
                for t in 0..<T { #expect(abs(out[(l * T + t) * C + c] - values[t]) <= step / 2 + 1e-6) }
            }
            for t in 0..<T {  // V: scale per (layer, token)
                let base = ((L + l) * T + t) * C
                let step = data[base..<base + C].map(abs).max()! / 127
                for c in 0..<C { #expect(abs(out[base + c] - data[base + c]) <= step / 2 + 1e-6) }
            }
        }
    }

    @Test("LMCache YAML of the reference demo parses; demo-only keys are accepted, unknown keys reported")
    func yamlConfig() throws {
        let demo = """
            chunk_size: 32            # prompts shorter than this are recomputed
            local_device: "cpu"
            remote_url: "lm://192.168.0.1:10080"
            remote_serde: "naive"
            max_local_cpu_size: 20    # GB
            pipelined_backend: False
            colour: blue
            """
        let c = try LMCacheConfig(yaml: demo, source: "example.yaml")
        #expect(c.chunkSize == 32)
        #expect(c.remoteURL?.host == "192.168.0.1" && c.remoteURL?.port == 10080)
        #expect(c.remoteSerde == .naive)
        #expect(c.maxLocalCPUBytes == 20_000_000_000)
        #expect(c.unknownKeys == ["colour"])
        let defaults = try LMCacheConfig(yaml: "", source: "empty")
        #expect(defaults.chunkSize == 256 && defaults.localCPU && defaults.remoteURL == nil)
    }

    @Test("LMCACHE_* variables when no file is named; booleans case-insensitive; bad values are errors naming the key")
    func environmentConfig() throws {
        let c = try LMCacheConfig.load(environment: ["LMCACHE_CHUNK_SIZE": "64", "LMCACHE_REMOTE_URL": "lm://localhost:65432",
                                                     "LMCACHE_LOCAL_CPU": "FALSE", "LMCACHE_REMOTE_SERDE": "kivi", "HOME": "/root"])
        #expect(c.chunkSize == 64 && !c.localCPU && c.remoteSerde == .kivi && c.remoteURL?.port == 65432)
        #expect(throws: LMCacheConfig.Invalid.self) { try LMCacheConfig.load(environment: ["LMCACHE_CHUNK_SIZE": "-3"]) }
        #expect(throws: LMCacheConfig.Invalid.self) { try LMCacheConfig.load(environment: ["LMCACHE_REMOTE_URL": "redis://x:1"]) }
        #expect(throws: LMCacheConfig.Invalid.self) { try LMCacheConfig.load(environment: ["LMCACHE_REMOTE_URL": "lm://nohost"]) }
        #expect(throws: LMCacheConfig.Invalid.self) { try LMCacheConfig.load(environment: ["LMCACHE_SAVE_DECODE_CACHE": "maybe"]) }
        do {
            _ = try LMCacheConfig.load(environment: ["LMCACHE_CONFIG_FILE": "/nonexistent/x.yaml"])
            Issue.record("a missing config file must be an error")
        } catch {
            #expect("\(error)".contains("/nonexistent/x.yaml"))
        }
    }

    @Test("--kv-transfer-config: roles, connector name, clear errors")
    func transferConfig() throws {
        #expect(try KVTransferConfig(json: #"{"kv_connector":"LMCacheConnector","kv_role":"kv_producer"}"#).role == .producer)
        #expect(try KVTransferConfig(json: #"{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}"#).role == .both)
        #expect(throws: LMCacheConfig.Invalid.self) { try KVTransferConfig(json: #"{"kv_connector":"NixlConnector","kv_role":"kv_producer"}"#) }
        #expect(throws: LMCacheConfig.Invalid.self) { try KVTransferConfig(json: #"{"kv_connector":"LMCacheConnector","kv_role":"producer"}"#) }
        #expect(throws: LMCacheConfig.Invalid.self) { try KVTransferConfig(json: "not json") }
    }
}
