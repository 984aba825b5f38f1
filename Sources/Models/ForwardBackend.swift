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
    /// Runs the batch for a step that samples some rows from their logits and takes the argmax of the others: `full`
    /// marks, for each requested logits row, whether its logits are needed. `body` gets the argmax of every unmarked
    /// row (in row order) and the marked rows one after the other (`vocabSize` floats each), in a buffer that lives
    /// only during the call and may be modified (the sampler scales it in place). A GPU computes the argmaxes on the
    /// device and sends only the marked rows to the host.
    func forward<R>(_ batch: [SequenceStep], full: [Bool],
                    _ body: (_ argmaxes: [Int], _ logits: UnsafeMutableBufferPointer<Float>) throws -> R) throws -> R
    func exportKV(blockTable: [Int], range: Range<Int>, into buffer: UnsafeMutablePointer<Float>) throws
    func importKV(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int, bufferOffset: Int) throws
}

extension ForwardBackend {
    /// The logits on the host, then each row's argmax.
    public func forwardArgmax(_ batch: [SequenceStep]) throws -> [Int] {
        Logits.argmaxes(try forward(batch), rowLength: config.vocabSize)
    }

    /// Every row's logits on the host: the unmarked rows' argmaxes taken, the marked rows moved to the front.
    public func forward<R>(_ batch: [SequenceStep], full: [Bool],
                           _ body: (_ argmaxes: [Int], _ logits: UnsafeMutableBufferPointer<Float>) throws -> R) throws -> R {
        var logits = try forward(batch)
        let V = config.vocabSize
        precondition(logits.count == full.count * V, "one mark per requested logits row")
        var argmaxes: [Int] = [], kept = 0
        logits.withUnsafeMutableBufferPointer { all in
            for r in full.indices {
                if full[r] {
                    // Rows below r are taken or already moved: the move never overwrites a row still to be read.
                    if kept != r { (all.baseAddress! + kept * V).update(from: all.baseAddress! + r * V, count: V) }
                    kept += 1
                } else {
                    argmaxes.append(Logits.argmax(all[r * V..<(r + 1) * V]))
                }
            }
        }
        return try logits.withUnsafeMutableBufferPointer { try body(argmaxes, UnsafeMutableBufferPointer(rebasing: $0[0..<kept * V])) }
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
