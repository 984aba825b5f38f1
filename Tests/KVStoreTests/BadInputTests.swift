import KVStore
import NIOCore
import Testing

/// Each bad input closes only the offending connection; afterwards a fresh client finds everything stored before.
@Suite("bad input never takes the store down nor loses data", .timeLimit(.minutes(1)))
struct BadInputTests {
    static let cases: [(String, [UInt8])] = [
        ("unknown command", Frame.request(9, key: "k")),
        ("negative length", Frame.request(1, length: -5, key: "k")),
        ("GET carrying a payload length", Frame.request(2, length: 10, key: "k")),
        ("key that is not UTF-8", Frame.le([3, 0, 1, 2, 0, 0, 0, 0]) + [0xff, 0xfe, 0xc3] + [UInt8](repeating: 0x20, count: 147)),
        ("empty key on PUT", Frame.request(1, length: 1, key: "") + [1]),
        ("length over --max-object-size", Frame.request(1, length: 4096 + 1, key: "big")),
        ("garbage", [UInt8](repeating: 0xAB, count: 182)),
    ]

    @Test("malformed frames are refused and the store keeps serving", arguments: 0..<cases.count)
    func malformedFrame(index: Int) async throws {
        let (name, frame) = Self.cases[index]
        let store = try await TestStore(maxObjectSize: 4096)
        defer { Task { await store.stop() } }
        try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.put("kept", [1, 2, 3]) + Frame.exist("kept"))
            #expect(try await c.receive(32) == Frame.okReply)
        }
        let leftover = try await RawConnection.with(port: store.port) { c in
            try await c.send(frame)
            return try await c.receiveUntilClosed()
        }
        #expect(leftover.isEmpty, "\(name): no reply before the close")
        try await expectStillServing(store, key: "kept", payload: [1, 2, 3])
    }

    @Test("a connection that closes in the middle of a PUT payload stores nothing")
    func truncatedPut() async throws {
        let store = try await TestStore()
        defer { Task { await store.stop() } }
        try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.put("kept", [7]) + Frame.exist("kept"))
            _ = try await c.receive(32)
            try await c.send(Frame.request(1, length: 1000, key: "half") + [UInt8](repeating: 1, count: 400))
        }
        try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.exist("half"))
            #expect(try await c.receive(32) == Frame.missReply)
        }
        try await expectStillServing(store, key: "kept", payload: [7])
    }

    @Test("a half-sent PUT over an existing key leaves the old value intact")
    func truncatedOverwrite() async throws {
        let store = try await TestStore()
        defer { Task { await store.stop() } }
        try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.put("k", [1, 1, 1]) + Frame.exist("k"))
            _ = try await c.receive(32)
        }
        try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.request(1, length: 10, key: "k") + [9, 9])
        }
        try await expectStillServing(store, key: "k", payload: [1, 1, 1])
    }

    private func expectStillServing(_ store: TestStore, key: String, payload: [UInt8]) async throws {
        let (header, body) = try await RawConnection.with(port: store.port) { c in
            try await c.send(Frame.get(key))
            let header = try await c.receive(32)
            return (header, try await c.receive(payload.count))
        }
        #expect(Array(header[0..<8]) == Frame.le([200, Int32(payload.count)]))
        #expect(body == payload)
    }
}
