@testable import KVStore
import NIOCore
import NIOEmbedded
import Testing

@Suite("lm:// wire framing", .timeLimit(.minutes(1)))
struct WireFramingTests {
    @Test("EXIST on a missing key answers the reference miss bytes")
    func existMissReferenceBytes() async throws {
        let store = try await TestStore()
        defer { Task { await store.stop() } }
        let reply = try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.exist("nope"))
            return try await c.receive(32)
        }
        #expect(hex(reply) == "9001000000000000010000000200000000000000000000000000000000000000")
    }

    @Test("the client's EXIST request starts with the reference bytes and pads the key with spaces")
    func clientExistRequestBytes() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ClientRequestHandler(requestTimeout: .seconds(5)))
        let promise = channel.eventLoop.makePromise(of: StoreReply.self)
        try channel.writeOutbound(ClientRequest(command: .exist, key: "vllm@m@1@0@abc", object: nil, reply: promise))
        let out = try channel.readOutbound(as: ByteBuffer.self)!
        let bytes = Array(out.readableBytesView)
        #expect(bytes.count == 182)
        #expect(hex(Array(bytes[0..<32])) == "0300000000000000010000000200000000000000000000000000000000000000")
        #expect(Array(bytes[32..<46]) == Array("vllm@m@1@0@abc".utf8))
        #expect(bytes[46...].allSatisfy { $0 == 0x20 })
        promise.succeed(StoreReply(code: 200, metadata: .empty, payload: nil))
        _ = try? channel.finish()
    }

    @Test("GET echoes the metadata and bytes of the PUT; EXIST turns true; HEALTH answers 200")
    func getEchoesPut() async throws {
        let store = try await TestStore()
        defer { Task { await store.stop() } }
        let payload: [UInt8] = Array(0..<200)
        let (getReply, body, exist, health) = try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.put("k", payload, fmt: 1, dtype: 3, shape: [2, 30, 32, 192]))
            try await c.send(Frame.get("k"))
            let header = try await c.receive(32)
            let body = try await c.receive(200)
            try await c.send(Frame.exist("k"))
            let exist = try await c.receive(32)
            try await c.send(Frame.health())
            return (header, body, exist, try await c.receive(32))
        }
        #expect(getReply == Frame.le([200, 200, 1, 3, 2, 30, 32, 192]))
        #expect(body == payload)
        #expect(exist == Frame.le([200, 0, 1, 2, 0, 0, 0, 0]))
        #expect(health == Frame.okReply)
    }

    @Test("PUT then GET sent in one write are answered in order on one connection")
    func pipelinedInOrder() async throws {
        let store = try await TestStore()
        defer { Task { await store.stop() } }
        let replies = try await RawConnection.with(port: store.port) { c in
            var burst: [UInt8] = []
            for i in 0..<20 {
                burst += Frame.put("key-\(i)", [UInt8](repeating: UInt8(i), count: 10 + i))
                burst += Frame.get("key-\(i)")
                burst += Frame.exist("absent-\(i)")
            }
            try await c.send(burst)
            var replies: [[UInt8]] = []
            for i in 0..<20 {
                let header = try await c.receive(32)
                #expect(header == Frame.le([200, Int32(10 + i), 1, 2, 0, 0, 0, 0]))
                replies.append(try await c.receive(10 + i))
                #expect(try await c.receive(32) == Frame.missReply)
            }
            return replies
        }
        for (i, r) in replies.enumerated() { #expect(r == [UInt8](repeating: UInt8(i), count: 10 + i)) }
    }

    @Test("a GET served from disk, pipelined with memory hits, is answered in request order")
    func diskReadKeepsOrder() async throws {
        let store = try await TestStore(memory: 100, dataDirectory: temporaryDirectory())
        defer { Task { await store.stop() } }
        let a = [UInt8](repeating: 0xA, count: 100), b = [UInt8](repeating: 0xB, count: 100)
        try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.put("a", a) + Frame.put("b", b) + Frame.exist("a"))
            #expect(try await c.receive(32) == Frame.okReply)
        }
        await store.store.flushSpills()

        #expect(store.store.usage().diskEntries == 1)
        let replies = try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.get("a") + Frame.get("b") + Frame.exist("a") + Frame.get("zz"))
            return try await c.receive(132 + 132 + 32 + 32)
        }
        #expect(Array(replies[0..<8]) == Frame.le([200, 100]))
        #expect(Array(replies[32..<132]) == a)
        #expect(Array(replies[164..<264]) == b)
        #expect(Array(replies[264..<296]) == Frame.okReply)
        #expect(Array(replies[296...]) == Frame.missReply)
    }

    @Test("a PUT fed one byte at a time decodes to exactly one request with the exact payload")
    func decoderByteByByte() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(RequestDecoder(protocol: .v1, maxObjectSize: 1 << 20)))
        let frame = Frame.put("abc", Array(1...100), fmt: 2, dtype: 4, shape: [1, 2, 3, 4]) + Frame.get("abc")
        for byte in frame { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        guard case .put(let key, let object) = try channel.readInbound(as: StoreRequest.self) else {
            Issue.record("expected a PUT"); return
        }
        #expect(key == "abc")
        #expect(Array(object.payload.readableBytesView) == Array(1...100))
        #expect(object.metadata == ObjectMetadata(fmt: 2, dtype: 4, shape: (1, 2, 3, 4)))
        guard case .get(let getKey) = try channel.readInbound(as: StoreRequest.self) else {
            Issue.record("expected a GET"); return
        }
        #expect(getKey == "abc")
        #expect(try channel.readInbound(as: StoreRequest.self) == nil)
        _ = try channel.finish()
    }

    @Test("the key field's padding is stripped, so a key sent with NUL padding is the same key")
    func keyPaddingStripped() async throws {
        let store = try await TestStore()
        defer { Task { await store.stop() } }
        let reply = try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.put("  padded", [9, 9]))
            var get = Frame.le([2, 0, 1, 2, 0, 0, 0, 0]) + Array("padded".utf8)
            get += [UInt8](repeating: 0, count: 150 - 6)
            try await c.send(get)
            return try await c.receive(34)
        }
        #expect(Array(reply[0..<4]) == Frame.le([200]))
        #expect(Array(reply[32...]) == [9, 9])
    }

    @Test("v0 protocol: 2-int headers, 8-byte replies and LIST of keys")
    func legacyProtocol() async throws {
        let store = try await TestStore(protocol: .v0)
        defer { Task { await store.stop() } }
        func v0(_ command: Int32, _ length: Int32, _ key: String) -> [UInt8] { Frame.le([command, length]) + Frame.key(key) }
        let (get, body, miss, list) = try await RawConnection.with(port: store.port) { c in
            try await c.send(v0(1, 3, "a") + [1, 2, 3] + v0(1, 1, "b") + [4])
            try await c.send(v0(2, 0, "a"))
            let get = try await c.receive(8)
            let body = try await c.receive(3)
            try await c.send(v0(2, 0, "zzz"))
            let miss = try await c.receive(8)
            try await c.send(v0(4, 0, ""))
            let listHeader = try await c.receive(8)
            let length = Int(listHeader[4]) | Int(listHeader[5]) << 8
            let list = String(decoding: try await c.receive(length), as: UTF8.self)
            return (get, body, miss, list)
        }
        #expect(get == Frame.le([200, 3]))
        #expect(body == [1, 2, 3])
        #expect(miss == Frame.le([400, 0]))
        #expect(Set(list.split(separator: "\n").map(String.init)) == ["a", "b"])
    }
}
