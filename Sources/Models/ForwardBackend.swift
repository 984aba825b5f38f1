/// What the engine needs from a model: a batched forward pass over sequences in a paged KV cache, and moving KV
/// between that cache and host buffers laid out [2][layers][tokens][kvDim] fp32 (the KV transfer payload).
/// The CPU model and the GPU model each implement it; the engine does not know which it drives.
public protocol ForwardBackend: AnyObject, Sendable {
    var config: ModelConfig { get }
    /// Runs the batch; returns the requested logits rows [rows × vocab].
    func forward(_ batch: [SequenceStep]) throws -> [Float]
    /// Runs the batch; returns each requested logits row's argmax (the lowest index among equal largest logits, NaNs
    /// passed over unless logit 0 is one): all that greedy sampling needs, which a GPU computes without sending the
    /// vocabulary's logits to the host.
    func forwardArgmax(_ batch: [SequenceStep]) throws -> [Int]
    func exportKV(blockTable: [Int], range: Range<Int>, into buffer: UnsafeMutablePointer<Float>) throws
    func importKV(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int, bufferOffset: Int) throws
}

extension ForwardBackend {
    /// The logits on the host, then each row's argmax.
    public func forwardArgmax(_ batch: [SequenceStep]) throws -> [Int] {
        Logits.argmaxes(try forward(batch), rowLength: config.vocabSize)
    }
}

public enum Logits {
    /// The first index of the largest logit, relative to the row's start: only a strictly larger value replaces the
    /// best so far, so NaNs never do (and a NaN first stays). Greedy sampling's choice, on the host and (argmax_rows)
    /// on the GPU.
    @inlinable
    public static func argmax<Row: RandomAccessCollection>(_ row: Row) -> Int where Row.Element == Float, Row.Index == Int {
        var best = row.startIndex
        for i in row.indices.dropFirst() where row[i] > row[best] { best = i }
        return best - row.startIndex
    }

    /// `Logits.argmax` of each row of `logits` (rows of `rowLength` values, one after the other).
    public static func argmaxes(_ logits: [Float], rowLength: Int) -> [Int] {
        (0..<logits.count / rowLength).map { r in argmax(logits[r * rowLength..<(r + 1) * rowLength]) }
    }
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
