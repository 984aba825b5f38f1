/// A contiguous KV cache for one sequence: K and V as [layers][positions][kvHeads · headDim], fp32.
/// (The paged cache of the server replaces this for batching; the layout per token is the same.)
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    public let capacity: Int
    public let kvDim: Int
    var k: [Float]
    var v: [Float]
    /// Positions filled so far.
    public internal(set) var count = 0

    public init(config: ModelConfig, capacity: Int) {
        layers = config.layers
        self.capacity = capacity
        kvDim = config.kvDim
        k = [Float](repeating: 0, count: config.layers * capacity * config.kvDim)
        v = k
    }

    @inline(__always)
    func offset(layer: Int, position: Int) -> Int { (layer * capacity + position) * kvDim }
}
