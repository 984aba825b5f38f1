import Foundation
import KVStore
import NIOCore
import NIOPosix
import Synchronization
import Testing

@Suite("KVStoreClient", .timeLimit(.minutes(1)))
struct ClientTests {
    @Test("64 concurrent clients doing mixed PUT/GET/EXIST of random sizes always read back exactly what was PUT")
    func concurrentMixedLoad() async throws {
        let store = try await TestStore(memory: 512 << 20)
        defer { Task { await store.stop() } }
        let port = store.port
        try await withThrowingTaskGroup(of: Int.self) { group in
            for clientIndex in 0..<64 {
                group.addTask {
                    let client = KVStoreClient(host: "127.0.0.1", port: port)
                    var rng = SeededBytes(seed: UInt64(clientIndex + 1))
                    var written: [String: [UInt8]] = [:]
                    var checked = 0
                    for op in 0..<40 {
                        let key = "c\(clientIndex)-k\(Int.random(in: 0..<8, using: &rng))"
                        switch op % 3 {
                        case 0:
                            let size = Int.random(in: 0...200_000, using: &rng)
                            let bytes = rng.bytes(size)
                            try await client.put(key, object(bytes))
                            written[key] = bytes
                        case 1:
                            let got = try await client.get(key)
                            #expect(got.map { Array($0.payload.readableBytesView) } == written[key], "\(key)")
                            checked += 1
                        default:
                            #expect(try await client.exists(key) == (written[key] != nil))
                        }
                    }
                    await client.shutdown()
                    return checked
                }
            }
            var total = 0
            for try await n in group { total += n }
            #expect(total == 64 * 13)
        }
    }

    @Test("GET of a large object round-trips byte for byte with its metadata")
    func largeObject() async throws {
        let store = try await TestStore()
        defer { Task { await store.stop() } }
        let client = KVStoreClient(host: "127.0.0.1", port: store.port)
        var rng = SeededBytes(seed: 42)
        let bytes = rng.bytes(10 << 20)
        try await client.put("big", StoredObject(metadata: ObjectMetadata(fmt: 1, dtype: 3, shape: (2, 30, 256, 192)),
                                                 payload: ByteBuffer(bytes: bytes)))
        let got = try #require(try await client.get("big"))
        #expect(got.metadata == ObjectMetadata(fmt: 1, dtype: 3, shape: (2, 30, 256, 192)))
        #expect(Array(got.payload.readableBytesView) == bytes)
        #expect(try await client.get("other") == nil)
        #expect(try await client.health())
        await client.shutdown()
    }

    @Test("a key the wire cannot carry is a typed error, not a crash")
    func invalidKey() async throws {
        let store = try await TestStore()
        defer { Task { await store.stop() } }
        let client = KVStoreClient(host: "127.0.0.1", port: store.port)
        await #expect(throws: KVStoreClientError.invalidKey(.tooLong(bytes: 151))) {
            try await client.exists(String(repeating: "x", count: 151))
        }
        #expect(try await client.exists("fine") == false)
        await client.shutdown()
    }

    @Test("the client reconnects by itself after the store restarts")
    func reconnectAfterRestart() async throws {
        let first = try await TestStore()
        let port = first.port
        var config = KVStoreClientConfiguration(host: "127.0.0.1", port: port)
        config.reconnectBackoff = .milliseconds(20)
        config.maxReconnectBackoff = .milliseconds(50)
        let client = KVStoreClient(config)
        try await client.put("a", object([1]))
        #expect(try await client.exists("a"))
        await first.stop()

        await #expect(throws: KVStoreClientError.self) { try await client.exists("a") }
        let second = try await TestStore(port: port)
        defer { Task { await second.stop() } }
        let deadline = ContinuousClock.now + .seconds(5)
        var answered = false
        while !answered && ContinuousClock.now < deadline {
            answered = (try? await client.health()) == true
            if !answered { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(answered)
        #expect(try await client.exists("a") == false)  // a new, empty store
        try await client.put("b", object([2]))
        #expect(try await client.get("b").map { Array($0.payload.readableBytesView) } == [2])
        await client.shutdown()
    }

    @Test("a store that never answers gives a timeout error, not a hang")
    func timeoutOnSilentServer() async throws {
        // A listener that accepts and never replies.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { ch in ch.eventLoop.makeSucceededFuture(ch) }
        let port = silent.channel.localAddress!.port!
        var config = KVStoreClientConfiguration(host: "127.0.0.1", port: port)
        config.requestTimeout = .milliseconds(200)
        let client = KVStoreClient(config)
        // The typed timeout is the proof (a hang would hit the suite's time limit); no wall-clock assertion, which
        // failed spuriously while model tests loaded both cores.
        await #expect(throws: KVStoreClientError.timeout) { try await client.exists("a") }
        await client.shutdown()
        try await silent.channel.close()
    }

    @Test("a store that drops connections while requests are sent fails each request; none is left waiting")
    func connectionDroppedWhileSending() async throws {
        // Each connection is closed by the store 0-300 µs after it is accepted, while eight tasks keep sending on the
        // shared client, so requests meet the close at many points of their way. The interleaving that once left a
        // request waiting forever (its reply promise in a write that never reached the handler) is narrower than
        // this reaches: it was reproduced by running the suite on one core (docs/STATUS.md), not by this test, which
        // guards the drop paths around it. A hang shows as this test left running at scripts/test.sh's deadline.
        let closer = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.scheduleTask(in: .microseconds(Int64.random(in: 0...300))) { channel.close(promise: nil) }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        var config = KVStoreClientConfiguration(host: "127.0.0.1", port: closer.localAddress!.port!)
        config.reconnectBackoff = .zero
        config.maxReconnectBackoff = .zero
        let client = KVStoreClient(config)
        let answered = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var answered = 0
                    for _ in 0..<300 { if (try? await client.exists("a")) != nil { answered += 1 } }
                    return answered
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(answered == 0, "the store never answers")
        await client.shutdown()
        try await closer.close()
    }

    @Test("nothing listening gives connectFailed")
    func connectRefused() async throws {
        let store = try await TestStore()
        let port = store.port
        await store.stop()
        let client = KVStoreClient(host: "127.0.0.1", port: port)
        await #expect { try await client.exists("a") } throws: { error in
            if case KVStoreClientError.connectFailed = error { return true }
            return false
        }
    }

    @Test("stopping the store closes all 16 open connections at once and keeps what they stored")
    func stopClosesEveryConnection() async throws {
        let store = try await TestStore()
        let answered = Counter()
        try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for i in 0..<16 {
                group.addTask {
                    try await RawConnection.with(port: store.port) { c in
                        try await c.send(Frame.put("k\(i)", [UInt8(i)]) + Frame.exist("k\(i)"))
                        #expect(try await c.receive(32) == Frame.okReply)
                        answered.increment()
                        return try await c.receiveUntilClosed()  // only the store's stop ends this
                    }
                }
            }
            while answered.value < 16 { try await Task.sleep(for: .milliseconds(5)) }
            await store.stop()
            for try await leftover in group { #expect(leftover.isEmpty) }
            #expect((0..<16).allSatisfy { store.store.contains(key: "k\($0)") })
        }
    }
}

/// A thread-safe count for tests.
final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
