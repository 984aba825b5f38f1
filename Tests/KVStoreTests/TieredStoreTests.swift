import Foundation
@testable import KVStore
import Logging
import NIOCore
import Testing

private func makeStore(memory: Int, disk: Int = 0, directory: String? = nil) throws -> TieredStore {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return try TieredStore(limits: StoreLimits(memoryCapacity: memory, diskCapacity: disk), dataDirectory: directory,
                           metrics: KVStoreMetrics(), logger: logger)
}

private func bytes(_ value: UInt8, _ count: Int = 100) -> [UInt8] { [UInt8](repeating: value, count: count) }

private func payload(_ o: StoredObject?) -> [UInt8]? { o.map { Array($0.payload.readableBytesView) } }

@Suite("storage tiers", .timeLimit(.minutes(1)))
struct TieredStoreTests {
    @Test("LRU index pops least recent first and touch refreshes")
    func lruIndexOrder() {
        var lru = LRUIndex<Int>()
        lru.insert("a", 1, size: 10)
        lru.insert("b", 2, size: 20)
        lru.insert("c", 3, size: 30)
        _ = lru.touch("a")
        #expect(lru.totalSize == 60)
        #expect(lru.popOldest()?.key == "b")
        lru.insert("c", 33, size: 5)  // replace refreshes and re-accounts
        #expect(lru.totalSize == 15)
        #expect(lru.keysOldestFirst == ["a", "c"])
        #expect(lru.remove("a") == 1)
        #expect(lru.popOldest()?.value == 33)
        #expect(lru.isEmpty && lru.totalSize == 0)
    }

    @Test("memory budget evicts least recently used; GET refreshes recency; bytes are exact")
    func evictionOrderAndAccounting() async throws {
        let store = try makeStore(memory: 300)
        store.put(key: "a", object: object(bytes(1)))
        store.put(key: "b", object: object(bytes(2)))
        store.put(key: "c", object: object(bytes(3)))
        #expect(payload(await store.get(key: "a")) == bytes(1))  // a is now most recent; b is oldest
        store.put(key: "d", object: object(bytes(4)))
        #expect(await store.get(key: "b") == nil)
        #expect(store.contains(key: "a") && store.contains(key: "c") && store.contains(key: "d"))
        #expect(store.usage().memoryBytes == 300)
        #expect(store.usage().memoryEntries == 3)
        store.put(key: "c", object: object(bytes(5, 50)))  // replacing re-accounts the size
        #expect(store.usage().memoryBytes == 250)
        #expect(payload(await store.get(key: "c")) == bytes(5, 50))
    }

    @Test("an object larger than memory is refused without a disk tier and lost nothing else")
    func oversizedWithoutDisk() async throws {
        let store = try makeStore(memory: 150)
        store.put(key: "a", object: object(bytes(1)))
        store.put(key: "huge", object: object(bytes(9, 151)))
        #expect(await store.get(key: "huge") == nil)
        #expect(payload(await store.get(key: "a")) == bytes(1))
    }

    @Test("evicted entries spill to disk and are served from there")
    func spillToDisk() async throws {
        let dir = temporaryDirectory()
        let store = try makeStore(memory: 200, disk: 10_000, directory: dir)
        for (i, k) in ["a", "b", "c", "d"].enumerated() { store.put(key: k, object: object(bytes(UInt8(i)), fmt: 3)) }
        await store.flushSpills()
        let usage = store.usage()
        #expect(usage.memoryEntries == 2 && usage.diskEntries == 2 && usage.pendingSpills == 0)
        let a = await store.get(key: "a")
        #expect(payload(a) == bytes(0))
        #expect(a?.metadata == ObjectMetadata(fmt: 3, dtype: 2, shape: (2, 1, 100, 1)))
        #expect(store.contains(key: "b"))
    }

    @Test("the disk budget evicts the oldest files")
    func diskBudget() async throws {
        let dir = temporaryDirectory()
        let perFile = 44 + 1 + 100
        let store = try makeStore(memory: 100, disk: 2 * perFile, directory: dir)
        for (i, k) in ["a", "b", "c", "d", "e"].enumerated() { store.put(key: k, object: object(bytes(UInt8(i)))) }
        await store.flushSpills()
        #expect(store.usage().diskEntries == 2)
        #expect(store.usage().diskBytes == 2 * perFile)
        #expect(await store.get(key: "a") == nil)
        #expect(await store.get(key: "b") == nil)
        #expect(payload(await store.get(key: "c")) == bytes(2))
        #expect(payload(await store.get(key: "e")) == bytes(4))
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files.count == 2)
    }

    @Test("a newer PUT is never overtaken by the spill of an older value")
    func staleSpillDiscarded() async throws {
        let dir = temporaryDirectory()
        let store = try makeStore(memory: 100, disk: 10_000, directory: dir)
        store.put(key: "k", object: object(bytes(1)))
        store.put(key: "x", object: object(bytes(2)))  // spills k(1)
        store.put(key: "k", object: object(bytes(3)))  // new k in memory; spills x
        await store.flushSpills()
        #expect(payload(await store.get(key: "k")) == bytes(3))
        store.put(key: "y", object: object(bytes(4)))  // spills k(3)
        await store.flushSpills()
        #expect(payload(await store.get(key: "k")) == bytes(3))
        #expect(payload(await store.get(key: "x")) == bytes(2))
    }

    @Test("a restart recovers the disk tier, ignoring interrupted writes and corrupt files")
    func restartRecovery() async throws {
        let dir = temporaryDirectory()
        do {
            let store = try makeStore(memory: 100, disk: 10_000, directory: dir)
            for (i, k) in ["a", "b", "c"].enumerated() { store.put(key: k, object: object(bytes(UInt8(i)))) }
            await store.flushSpills()
        }
        // A crash mid-write leaves a temp file; a torn entry has the wrong length.
        _ = FileManager.default.createFile(atPath: dir + "/.tmp-crashed", contents: Data(repeating: 7, count: 50))
        let aPath = DiskTier.pathForTesting(directory: dir, key: "a")
        let original = try Data(contentsOf: URL(fileURLWithPath: aPath))
        try original.prefix(original.count - 10).write(to: URL(fileURLWithPath: aPath))

        let reopened = try makeStore(memory: 100, disk: 10_000, directory: dir)
        #expect(await reopened.get(key: "a") == nil)
        #expect(payload(await reopened.get(key: "b")) == bytes(1))
        #expect(reopened.usage().diskEntries == 1)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(!files.contains(".tmp-crashed"))
    }

    @Test("persisting on shutdown moves every memory entry to disk, so a restart serves it")
    func persistOnShutdown() async throws {
        let dir = temporaryDirectory()
        do {
            let store = try makeStore(memory: 1000, disk: 10_000, directory: dir)
            for (i, k) in ["a", "b"].enumerated() { store.put(key: k, object: object(bytes(UInt8(i)))) }
            await store.persistMemory()
        }
        let reopened = try makeStore(memory: 1000, disk: 10_000, directory: dir)
        #expect(payload(await reopened.get(key: "a")) == bytes(0))
        #expect(payload(await reopened.get(key: "b")) == bytes(1))
    }
}
