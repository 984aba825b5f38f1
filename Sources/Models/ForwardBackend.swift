/// What the engine needs from a model: a batched forward pass over sequences in a paged KV cache, and moving KV
/// between that cache and host buffers laid out [2][layers][tokens][kvDim] fp32 (the KV transfer payload).
/// The CPU model and the GPU model each implement it; the engine does not know which it drives.
public protocol ForwardBackend: AnyObject, Sendable {
    var config: ModelConfig { get }
    /// Runs the batch; returns the requested logits rows [rows × vocab].
    func forward(_ batch: [SequenceStep]) throws -> [Float]
    func exportKV(blockTable: [Int], range: Range<Int>, into buffer: UnsafeMutablePointer<Float>) throws
    func importKV(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int, bufferOffset: Int) throws
}

/// The CPU model over a host-memory paged cache.
public final class CPUBackend: ForwardBackend, @unchecked Sendable {
    public let model: LlamaModel
    public let cache: PagedKVCache
    public var config: ModelConfig { model.config }

    public init(model: LlamaModel, blockSize: Int, numBlocks: Int) {
        self.model = model
        cache = PagedKVCache(config: model.config, blockSize: blockSize, numBlocks: numBlocks)
    }

    public func forward(_ batch: [SequenceStep]) -> [Float] { model.forward(batch, cache: cache) }

    public func exportKV(blockTable: [Int], range: Range<Int>, into buffer: UnsafeMutablePointer<Float>) {
        cache.export(blockTable: blockTable, range: range, into: buffer)
    }

    public func importKV(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int, bufferOffset: Int) {
        cache.import(blockTable: blockTable, range: range, from: buffer, bufferTokens: bufferTokens, bufferOffset: bufferOffset)
    }
}
