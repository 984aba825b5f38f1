#if canImport(Glibc)
import Glibc
#endif

/// The paged KV cache: `numBlocks` blocks of `blockSize` token slots, each slot holding K and V for every layer.
/// Layout of K (and of V): [block][layer][slot][kvHeads · headDim] fp32, so one block's rows for one layer are
/// contiguous (what a KV chunk export copies). A sequence owns a list of blocks, its block table.
public final class PagedKVCache: @unchecked Sendable {
    public let layers: Int
    public let blockSize: Int
    public let numBlocks: Int
    public let kvDim: Int
    let k: UnsafeMutablePointer<Float>
    let v: UnsafeMutablePointer<Float>

    public init(layers: Int, kvDim: Int, blockSize: Int, numBlocks: Int) {
        precondition(layers > 0 && kvDim > 0 && blockSize > 0 && numBlocks > 0)
        self.layers = layers
        self.kvDim = kvDim
        self.blockSize = blockSize
        self.numBlocks = numBlocks
        let count = numBlocks * layers * blockSize * kvDim
        // calloc: large zeroed allocations are lazily mapped pages, so an idle cache costs no resident memory.
        guard let kRaw = calloc(count, MemoryLayout<Float>.stride), let vRaw = calloc(count, MemoryLayout<Float>.stride) else {
            fatalError("cannot allocate a KV cache of \(2 * count * 4) bytes")
        }
        k = kRaw.bindMemory(to: Float.self, capacity: count)
        v = vRaw.bindMemory(to: Float.self, capacity: count)
    }

    public convenience init(config: ModelConfig, blockSize: Int, numBlocks: Int) {
        self.init(layers: config.layers, kvDim: config.kvDim, blockSize: blockSize, numBlocks: numBlocks)
    }

    deinit {
        free(k)
        free(v)
    }

    /// Bytes one token occupies (K and V, every layer).
    public static func bytesPerToken(_ config: ModelConfig) -> Int { 2 * config.layers * config.kvDim * 4 }

    @inline(__always)
    func offset(block: Int, layer: Int, slot: Int) -> Int { ((block * layers + layer) * blockSize + slot) * kvDim }

    @inline(__always)
    func offset(table: UnsafePointer<Int>, layer: Int, position: Int) -> Int {
        offset(block: table[position / blockSize], layer: layer, slot: position % blockSize)
    }

    /// Copies positions `range` of a sequence into `out` as [2][layers][range.count][kvDim] (K then V): the
    /// `naive` KV chunk payload layout.
    public func export(blockTable: [Int], range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        transfer(blockTable: blockTable, range: range, buffer: out, bufferTokens: range.count, bufferOffset: 0, toCache: false)
    }

    /// The inverse of `export`: writes positions `range` of a sequence from a [2][layers][bufferTokens][kvDim]
    /// buffer whose token `bufferOffset` is position `range.lowerBound`.
    public func `import`(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int,
                         bufferOffset: Int) {
        transfer(blockTable: blockTable, range: range, buffer: UnsafeMutablePointer(mutating: buffer),
                 bufferTokens: bufferTokens, bufferOffset: bufferOffset, toCache: true)
    }

    private func transfer(blockTable: [Int], range: Range<Int>, buffer: UnsafeMutablePointer<Float>, bufferTokens: Int,
                          bufferOffset: Int, toCache: Bool) {
        let layout = PagedLayout(layers: layers, blockSize: blockSize, kvDim: kvDim)
        layout.forEachRun(blockTable: blockTable, range: range, bufferTokens: bufferTokens, bufferOffset: bufferOffset) { side, at, flatAt, count in
            let cache = (side == 0 ? k : v) + at, flat = buffer + flatAt
            if toCache { cache.update(from: flat, count: count) } else { flat.update(from: cache, count: count) }
        }
    }
}

/// The paged cache's layout rule, shared by the CPU cache and the GPU's device cache: which floats of a side's
/// cache ([block][layer][slot][kvDim]) correspond to which floats of a [2][layers][bufferTokens][kvDim] buffer
/// (the `naive` KV chunk layout) for positions `range` of a sequence.
public struct PagedLayout: Sendable {
    public let layers: Int
    public let blockSize: Int
    public let kvDim: Int

    public init(layers: Int, blockSize: Int, kvDim: Int) {
        (self.layers, self.blockSize, self.kvDim) = (layers, blockSize, kvDim)
    }

    /// Calls `body(side, cacheOffset, bufferOffset, count)` (offsets and count in floats) once per run of
    /// consecutive slots inside one block, for each side (0 = K, 1 = V) and layer. The buffer's token
    /// `bufferOffset` is position `range.lowerBound`.
    public func forEachRun(blockTable: [Int], range: Range<Int>, bufferTokens: Int, bufferOffset: Int,
                           _ body: (Int, Int, Int, Int) throws -> Void) rethrows {
        precondition(range.lowerBound >= 0 && range.upperBound <= blockTable.count * blockSize)
        precondition(bufferOffset >= 0 && bufferOffset + range.count <= bufferTokens)
        for side in 0..<2 {
            for layer in 0..<layers {
                var position = range.lowerBound
                while position < range.upperBound {
                    let slot = position % blockSize
                    let run = min(blockSize - slot, range.upperBound - position)
                    let cache = ((blockTable[position / blockSize] * layers + layer) * blockSize + slot) * kvDim
                    let flat = ((side * layers + layer) * bufferTokens + bufferOffset + position - range.lowerBound) * kvDim
                    try body(side, cache, flat, run * kvDim)
                    position += run
                }
            }
        }
    }
}

/// A KV cache for one sequence (tools and tests): one block as long as the capacity.
public final class KVCache: @unchecked Sendable {
    public let paged: PagedKVCache
    public let capacity: Int
    /// Positions filled so far.
    public internal(set) var count = 0

    public init(config: ModelConfig, capacity: Int) {
        self.capacity = capacity
        paged = PagedKVCache(config: config, blockSize: max(capacity, 1), numBlocks: 1)
    }
}
