import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Storage limits of a store.
public struct StoreLimits: Sendable {
    /// Bytes of payload held in memory.
    public var memoryCapacity: Int
    /// Bytes of files in the disk tier (only with a data directory).
    public var diskCapacity: Int

    public init(memoryCapacity: Int, diskCapacity: Int) {
        self.memoryCapacity = memoryCapacity
        self.diskCapacity = diskCapacity
    }
}

/// Memory LRU with a byte budget, spilling evicted entries to an optional disk tier with its own budget.
///
/// All bookkeeping sits behind one mutex; file I/O never runs under it. Spills are written by one serial thread, in
/// eviction order, and each carries a version so that a spill overtaken by a newer PUT of the same key is discarded
/// instead of resurrecting stale bytes. While a spill is in flight its object stays servable from memory.
public final class TieredStore: Sendable {
    private struct Spill {
        var version: UInt64
        var object: StoredObject
    }

    private struct State {
        var memory = LRUIndex<StoredObject>()
        var spilling: [String: Spill] = [:]
        var spillingBytes = 0
        var disk = LRUIndex<Void>()
        var nextVersion: UInt64 = 0
    }

    public let limits: StoreLimits
    private let state = Mutex(State())
    private let disk: DiskTier?
    private let diskWriter: NIOThreadPool
    private let diskReaders: NIOThreadPool
    private let metrics: KVStoreMetrics
    private let logger: Logger
    /// Spills not yet on disk may hold at most this many bytes beyond the memory budget; past it, evictions drop.
    private let maxSpillBacklog: Int

    public init(limits: StoreLimits, dataDirectory: String?, metrics: KVStoreMetrics, logger: Logger) throws {
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
        self.maxSpillBacklog = max(64 << 20, min(limits.memoryCapacity / 4, 1 << 30))
        diskWriter = NIOThreadPool(numberOfThreads: 1)
        diskReaders = NIOThreadPool(numberOfThreads: 2)
        diskWriter.start()
        diskReaders.start()
        if let dataDirectory {
            let disk = try DiskTier(directory: dataDirectory)
            self.disk = disk
            let entries = disk.scan { path, error in logger.warning("discarding disk entry \(path): \(error)") }
            var evicted: [String] = []
            state.withLock { state in
                for entry in entries { state.disk.insert(entry.key, (), size: entry.fileSize) }
                evicted = Self.trimDisk(&state, limit: limits.diskCapacity)
            }
            evicted.forEach(disk.remove)
            logger.info("disk tier \(dataDirectory): \(entries.count - evicted.count) entries recovered")
        } else {
            disk = nil
        }
        state.withLock { publishSizes($0) }
    }

    deinit {
        try? diskWriter.syncShutdownGracefully()
        try? diskReaders.syncShutdownGracefully()
    }

    /// Stores `object` under `key`, replacing any older value in every tier.
    public func put(key: String, object: StoredObject) {
        let size = object.payload.readableBytes
        var spills: [(String, Spill)] = []
        var staleOnDisk = false
        var accepted = true
        state.withLock { state in
            state.nextVersion += 1
            if let old = state.spilling.removeValue(forKey: key) { state.spillingBytes -= old.object.payload.readableBytes }
            staleOnDisk = state.disk.remove(key) != nil
            state.memory.remove(key)
            if size <= limits.memoryCapacity {
                state.memory.insert(key, object, size: size)
            } else if disk != nil && DiskTier.fileSize(key: key, payloadBytes: size) <= limits.diskCapacity {
                spills.append((key, Spill(version: state.nextVersion, object: object)))  // too big for memory: straight to disk
            } else {
                accepted = false
            }
            while state.memory.totalSize > limits.memoryCapacity, let (k, v, s) = state.memory.popOldest() {
                metrics.evictions.increment()
                guard disk != nil, state.spillingBytes + s <= maxSpillBacklog else {
                    metrics.dropped.increment()
                    continue
                }
                state.nextVersion += 1
                spills.append((k, Spill(version: state.nextVersion, object: v)))
            }
            for (k, spill) in spills {
                state.spilling[k] = spill
                state.spillingBytes += spill.object.payload.readableBytes
            }
            publishSizes(state)
        }
        if !accepted {
            metrics.dropped.increment()
            logger.warning("object \(key) of \(size) bytes exceeds every tier's capacity; not stored")
        }
        if staleOnDisk, let disk { diskWriter.submit { _ in disk.remove(key: key) } }
        for (k, spill) in spills { scheduleSpill(key: k, spill: spill) }
    }

    /// Where a key was found by `lookup`.
    public enum Lookup: Sendable {
        case found(StoredObject)
        case onDisk
        case miss
    }

    /// Finds `key` without blocking, refreshing its recency; a disk hit must then be read with `readFromDisk`.
    public func lookup(key: String) -> Lookup {
        state.withLock { state in
            if let object = state.memory.touch(key) { return .found(object) }
            if let spill = state.spilling[key] { return .found(spill.object) }
            if state.disk.touch(key) != nil { return .onDisk }
            return .miss
        }
    }

    /// Reads a disk-tier entry on the reader threads; nil when it vanished meanwhile (evicted or replaced), which is
    /// a miss, never an error for the client.
    public func readFromDisk(key: String, on eventLoop: any EventLoop) -> EventLoopFuture<StoredObject?> {
        guard let disk else { return eventLoop.makeSucceededFuture(nil) }
        let logger = self.logger
        return diskReaders.runIfActive(eventLoop: eventLoop) { () -> StoredObject? in
            do {
                return try disk.read(key: key)
            } catch {
                logger.debug("disk read of \(key) failed: \(error)")
                return nil
            }
        }
    }

    /// The value under `key`, refreshing its recency; nil on a miss.
    public func get(key: String) async -> StoredObject? {
        switch lookup(key: key) {
        case .found(let object): return object
        case .miss: return nil
        case .onDisk:
            return try? await readFromDisk(key: key, on: MultiThreadedEventLoopGroup.singleton.any()).get()
        }
    }

    /// Whether `key` is held in any tier; a hit refreshes its recency, as a GET would.
    public func contains(key: String) -> Bool {
        state.withLock { state in
            state.memory.touch(key) != nil || state.spilling[key] != nil || state.disk.touch(key) != nil
        }
    }

    /// Every key held, memory first (for the v0 LIST command).
    public func keys() -> [String] {
        state.withLock { state in
            var seen = Set<String>()
            var keys: [String] = []
            for k in state.memory.keysOldestFirst.reversed() + Array(state.spilling.keys) + state.disk.keysOldestFirst.reversed()
            where seen.insert(k).inserted {
                keys.append(k)
            }
            return keys
        }
    }

    public struct Usage: Sendable, Equatable {
        public var memoryEntries: Int
        public var memoryBytes: Int
        public var pendingSpills: Int
        public var diskEntries: Int
        public var diskBytes: Int
    }

    public func usage() -> Usage {
        state.withLock { s in
            Usage(memoryEntries: s.memory.count, memoryBytes: s.memory.totalSize, pendingSpills: s.spilling.count,
                  diskEntries: s.disk.count, diskBytes: s.disk.totalSize)
        }
    }

    /// Waits until every spill scheduled so far is on disk (the writer is serial, so a no-op job is a barrier).
    public func flushSpills() async {
        _ = try? await diskWriter.runIfActive {}
    }

    /// Writes every memory entry to the disk tier (oldest first, within its budget) and waits for the writes: a
    /// graceful shutdown loses nothing that fits on disk. Without a disk tier this does nothing.
    public func persistMemory() async {
        guard disk != nil else { return }
        let spills: [(String, Spill)] = state.withLock { state in
            var spills: [(String, Spill)] = []
            while let (k, v, s) = state.memory.popOldest() {
                state.nextVersion += 1
                let spill = Spill(version: state.nextVersion, object: v)
                state.spilling[k] = spill
                state.spillingBytes += s
                spills.append((k, spill))
            }
            return spills
        }
        for (k, spill) in spills { scheduleSpill(key: k, spill: spill) }
        await flushSpills()
    }

    private func scheduleSpill(key: String, spill: Spill) {
        guard let disk else { return }
        diskWriter.submit { [self] _ in
            var written = true
            do {
                try disk.write(key: key, object: spill.object)
            } catch {
                written = false
                logger.error("spill of \(key) failed: \(error)")
            }
            let fileSize = DiskTier.fileSize(key: key, payloadBytes: spill.object.payload.readableBytes)
            var current = false
            let evicted: [String] = state.withLock { state in
                guard let pending = state.spilling[key], pending.version == spill.version else { return [] }
                current = true
                state.spilling.removeValue(forKey: key)
                state.spillingBytes -= spill.object.payload.readableBytes
                guard written else { return [] }
                state.disk.insert(key, (), size: fileSize)
                let evicted = Self.trimDisk(&state, limit: limits.diskCapacity)
                publishSizes(state)
                return evicted
            }
            if written && !current { disk.remove(key: key) }  // overtaken by a newer PUT: never serve it
            evicted.forEach(disk.remove)
        }
    }

    private static func trimDisk(_ state: inout State, limit: Int) -> [String] {
        var evicted: [String] = []
        while state.disk.totalSize > limit, let (k, _, _) = state.disk.popOldest() { evicted.append(k) }
        return evicted
    }

    /// Sets the size gauges from state the caller already holds the lock for (no second lock round per PUT).
    private func publishSizes(_ s: borrowing State) {
        metrics.memoryEntries.set(s.memory.count)
        metrics.memoryBytes.set(s.memory.totalSize)
        metrics.diskEntries.set(s.disk.count)
        metrics.diskBytes.set(s.disk.totalSize)
    }
}
