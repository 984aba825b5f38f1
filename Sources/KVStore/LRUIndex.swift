/// Keys in recency order with per-key values and sizes; O(1) insert, touch, remove and pop-oldest.
/// A doubly linked list threaded through arrays (slot indices), so no per-operation allocation once warmed up.
struct LRUIndex<Value> {
    private struct Node {
        var key: String
        var value: Value?
        var size: Int
        var prev: Int
        var next: Int
    }

    private var slots: [Node] = []
    private var freeSlots: [Int] = []
    private var slotOf: [String: Int] = [:]
    private var head = -1  // most recent
    private var tail = -1  // least recent
    private(set) var totalSize = 0

    var count: Int { slotOf.count }
    var isEmpty: Bool { slotOf.isEmpty }

    func contains(_ key: String) -> Bool { slotOf[key] != nil }

    func peek(_ key: String) -> Value? {
        guard let slot = slotOf[key] else { return nil }
        return slots[slot].value
    }

    /// Returns the value and marks it most recently used.
    mutating func touch(_ key: String) -> Value? {
        guard let slot = slotOf[key] else { return nil }
        unlink(slot)
        linkAtHead(slot)
        return slots[slot].value
    }

    /// Inserts or replaces `key` as the most recent entry; returns the replaced value.
    @discardableResult
    mutating func insert(_ key: String, _ value: Value, size: Int) -> Value? {
        let old = remove(key)
        let node = Node(key: key, value: value, size: size, prev: -1, next: -1)
        let slot: Int
        if let reused = freeSlots.popLast() {
            slot = reused
            slots[slot] = node
        } else {
            slot = slots.count
            slots.append(node)
        }
        slotOf[key] = slot
        linkAtHead(slot)
        totalSize += size
        return old
    }

    @discardableResult
    mutating func remove(_ key: String) -> Value? {
        guard let slot = slotOf.removeValue(forKey: key) else { return nil }
        return release(slot)
    }

    /// Removes and returns the least recently used entry.
    mutating func popOldest() -> (key: String, value: Value, size: Int)? {
        guard tail >= 0 else { return nil }
        let slot = tail
        let key = slots[slot].key
        let size = slots[slot].size
        slotOf.removeValue(forKey: key)
        let value = release(slot)
        return (key, value, size)
    }

    /// Keys from least to most recently used.
    var keysOldestFirst: [String] {
        var keys: [String] = []
        keys.reserveCapacity(count)
        var slot = tail
        while slot >= 0 {
            keys.append(slots[slot].key)
            slot = slots[slot].prev
        }
        return keys
    }

    private mutating func release(_ slot: Int) -> Value {
        unlink(slot)
        totalSize -= slots[slot].size
        let value = slots[slot].value!
        slots[slot].value = nil
        slots[slot].key = ""
        freeSlots.append(slot)
        return value
    }

    private mutating func unlink(_ slot: Int) {
        let (p, n) = (slots[slot].prev, slots[slot].next)
        if p >= 0 { slots[p].next = n } else { head = n }
        if n >= 0 { slots[n].prev = p } else { tail = p }
        slots[slot].prev = -1
        slots[slot].next = -1
    }

    private mutating func linkAtHead(_ slot: Int) {
        slots[slot].next = head
        slots[slot].prev = -1
        if head >= 0 { slots[head].prev = slot }
        head = slot
        if tail < 0 { tail = slot }
    }
}
