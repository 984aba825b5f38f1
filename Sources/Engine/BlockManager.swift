import Synchronization

/// Owns the KV cache's blocks: a free list, reference counts, and the prefix cache (full blocks indexed by chained
/// hash). A cached block whose last user left stays cached and evictable (least recently released first) until a
/// fresh block is needed. Used only by the engine's step loop, except `cachedPrefixTokens`, which any thread may ask.
struct BlockManager {
    let numBlocks: Int
    let blockSize: Int
    private var refCount: [Int]
    private var free: [Int]
    /// Cached content per block: its hash, its parent's hash and its tokens (to verify hits).
    private var content: [CachedBlock?]
    private var byHash: [UInt64: Int] = [:]
    /// Evictable cached blocks (ref count 0) as a doubly linked list, oldest release at the head.
    private var prev: [Int], next: [Int]
    private var head = -1, tail = -1
    private(set) var evictableCount = 0
    /// The hashes in `byHash`, readable from other threads (the KV connector skips fetching what is local).
    let sharedHashes: SharedHashes
    private(set) var cachingEnabled: Bool

    struct CachedBlock {
        var hash: UInt64
        var parent: UInt64
        var tokens: [Int]
    }

    init(numBlocks: Int, blockSize: Int, prefixCaching: Bool) {
        self.numBlocks = numBlocks
        self.blockSize = blockSize
        refCount = [Int](repeating: 0, count: numBlocks)
        free = Array((0..<numBlocks).reversed())
        content = [CachedBlock?](repeating: nil, count: numBlocks)
        prev = [Int](repeating: -1, count: numBlocks)
        next = [Int](repeating: -1, count: numBlocks)
        sharedHashes = SharedHashes()
        cachingEnabled = prefixCaching
    }

    /// Blocks that can be handed out now (free plus evictable).
    var available: Int { free.count + evictableCount }
    /// Blocks held by running sequences.
    var used: Int { numBlocks - available }

    /// The longest run of cached blocks matching `tokens` from the start, verified token by token. At most
    /// `maxBlocks`. Does not take references.
    func lookup(_ tokens: [Int], maxBlocks: Int) -> [Int] { lookupWithHash(tokens, maxBlocks: maxBlocks).blocks }

    /// `lookup`, plus the chained hash of the last matched block (`PrefixHash.root` when none matched).
    func lookupWithHash(_ tokens: [Int], maxBlocks: Int) -> (blocks: [Int], lastHash: UInt64) {
        guard cachingEnabled else { return ([], PrefixHash.root) }
        var blocks: [Int] = []
        var parent = PrefixHash.root
        var start = 0
        while blocks.count < maxBlocks, start + blockSize <= tokens.count {
            let slice = tokens[start..<start + blockSize]
            let h = PrefixHash.hash(parent: parent, tokens: slice)
            guard let block = byHash[h], let c = content[block], c.parent == parent, c.tokens.elementsEqual(slice) else { break }
            blocks.append(block)
            parent = h
            start += blockSize
        }
        return (blocks, parent)
    }

    /// Takes a reference on cached blocks found by `lookup`.
    mutating func acquire(_ blocks: [Int]) {
        for b in blocks {
            if refCount[b] == 0 { unlinkEvictable(b) }
            refCount[b] += 1
        }
    }

    /// `count` fresh blocks, or nil (nothing taken) when there are not enough.
    mutating func allocate(_ count: Int) -> [Int]? {
        guard count <= available else { return nil }
        var out: [Int] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            let b: Int
            if let f = free.popLast() {
                b = f
            } else {
                b = head
                unlinkEvictable(b)
                uncache(b)
            }
            refCount[b] = 1
            out.append(b)
        }
        return out
    }

    /// Drops one reference on each block; a block nobody holds becomes evictable (cached) or free.
    mutating func release(_ blocks: [Int]) {
        for b in blocks.reversed() {
            precondition(refCount[b] > 0, "double release of block \(b)")
            refCount[b] -= 1
            guard refCount[b] == 0 else { continue }
            if content[b] != nil { linkEvictable(b) } else { free.append(b) }
        }
    }

    /// Records that `block` now holds the KV of the full block `tokens` whose chained hash is `hash`.
    mutating func register(block: Int, hash: UInt64, parent: UInt64, tokens: ArraySlice<Int>) {
        guard cachingEnabled, content[block] == nil, byHash[hash] == nil else { return }
        content[block] = CachedBlock(hash: hash, parent: parent, tokens: Array(tokens))
        byHash[hash] = block
        sharedHashes.insert(hash)
    }

    /// Drops every cached block nobody holds (e.g. `POST /reset_prefix_cache`).
    mutating func resetPrefixCache() {
        while head >= 0 {
            let b = head
            unlinkEvictable(b)
            uncache(b)
            free.append(b)
        }
    }

    private mutating func uncache(_ b: Int) {
        guard let c = content[b] else { return }
        byHash[c.hash] = nil
        sharedHashes.remove(c.hash)
        content[b] = nil
    }

    private mutating func linkEvictable(_ b: Int) {
        prev[b] = tail
        next[b] = -1
        if tail >= 0 { next[tail] = b } else { head = b }
        tail = b
        evictableCount += 1
    }

    private mutating func unlinkEvictable(_ b: Int) {
        if prev[b] >= 0 { next[prev[b]] = next[b] } else { head = next[b] }
        if next[b] >= 0 { prev[next[b]] = prev[b] } else { tail = prev[b] }
        prev[b] = -1
        next[b] = -1
        evictableCount -= 1
    }
}

/// A thread-safe set of cached block hashes.
final class SharedHashes: Sendable {
    private let set = Mutex<Set<UInt64>>([])
    func insert(_ h: UInt64) { set.withLock { _ = $0.insert(h) } }
    func remove(_ h: UInt64) { set.withLock { _ = $0.remove(h) } }

    /// How many leading full blocks of `tokens` are cached (hash match only; the engine verifies on admission).
    func cachedPrefixTokens(_ tokens: [Int], blockSize: Int) -> Int {
        let hashes = PrefixHash.blockHashes(tokens, blockSize: blockSize)
        return set.withLock { set in
            var n = 0
            for h in hashes {
                guard set.contains(h) else { break }
                n += blockSize
            }
            return n
        }
    }
}
