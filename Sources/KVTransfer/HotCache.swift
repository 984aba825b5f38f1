import KVStore
import Synchronization

/// The connector's local CPU cache of encoded chunks (`max_local_cpu_size`): least recently used goes first.
final class HotCache: Sendable {
    private struct State {
        var entries: [String: (object: StoredObject, tick: UInt64)] = [:]
        var order: [UInt64: String] = [:]
        var oldest: UInt64 = 0
        var tick: UInt64 = 0
        var bytes = 0
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    func get(_ key: String) -> StoredObject? {
        state.withLock { s in
            guard let entry = s.entries[key] else { return nil }
            s.order[entry.tick] = nil
            s.tick += 1
            s.entries[key] = (entry.object, s.tick)
            s.order[s.tick] = key
            return entry.object
        }
    }

    func contains(_ key: String) -> Bool { state.withLock { $0.entries[key] != nil } }

    func put(_ key: String, _ object: StoredObject) {
        let size = object.payload.readableBytes
        guard size <= capacity else { return }
        state.withLock { s in
            if let old = s.entries[key] {
                s.order[old.tick] = nil
                s.bytes -= old.object.payload.readableBytes
            }
            s.tick += 1
            s.entries[key] = (object, s.tick)
            s.order[s.tick] = key
            s.bytes += size
            // Evict from the oldest tick upward (ticks of refreshed entries were removed from `order`).
            while s.bytes > capacity, s.oldest < s.tick {
                s.oldest += 1
                guard let victim = s.order.removeValue(forKey: s.oldest) else { continue }
                if let e = s.entries.removeValue(forKey: victim) { s.bytes -= e.object.payload.readableBytes }
            }
        }
    }
}
