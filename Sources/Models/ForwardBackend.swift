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
    /// Runs the batch for a step whose rows need different things (`outputs`, one per requested logits row): `body`
    /// gets the token of every `.argmax` and `.draw` row (in row order), beside it the log-probabilities of each
    /// `.draw` row that asked for them (nil otherwise), and the `.logits` rows one after the other (`vocabSize` floats
    /// each), in a buffer that lives only during the call and may be modified (the sampler scales it in place). A GPU
    /// computes the tokens on the device and sends only the `.logits` rows to the host.
    func forward<R>(_ batch: [SequenceStep], outputs: [RowOutput],
                    _ body: (_ tokens: [Int], _ logprobs: [DrawnLogprobs?], _ logits: UnsafeMutableBufferPointer<Float>) throws -> R) throws -> R
    /// Whether `.draw` rows may be asked for (the backend samples on its device); the host samples otherwise.
    var drawsOnDevice: Bool { get }
    /// Whether `.draw` rows may ask for log-probabilities (`DeviceDraw.logprobs`, at most `DeviceDraw.maxTopLogprobs`).
    var drawsLogprobsOnDevice: Bool { get }
    func exportKV(blockTable: [Int], range: Range<Int>, into buffer: UnsafeMutablePointer<Float>) throws
    func importKV(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int, bufferOffset: Int) throws
}

extension ForwardBackend {
    /// The logits on the host, then each row's argmax.
    public func forwardArgmax(_ batch: [SequenceStep]) throws -> [Int] {
        Logits.argmaxes(try forward(batch), rowLength: config.vocabSize)
    }

    public var drawsOnDevice: Bool { false }
    public var drawsLogprobsOnDevice: Bool { false }

    /// Every row's logits on the host: the `.argmax` rows' argmaxes taken, the `.logits` rows moved to the front. No
    /// `.draw` rows (`drawsOnDevice` is false).
    public func forward<R>(_ batch: [SequenceStep], outputs: [RowOutput],
                           _ body: (_ tokens: [Int], _ logprobs: [DrawnLogprobs?], _ logits: UnsafeMutableBufferPointer<Float>) throws -> R) throws -> R {
        var logits = try forward(batch)
        let V = config.vocabSize
        precondition(logits.count == outputs.count * V, "one output per requested logits row")
        var argmaxes: [Int] = [], kept = 0
        logits.withUnsafeMutableBufferPointer { all in
            for r in outputs.indices {
                switch outputs[r] {
                case .logits:
                    // Rows below r are taken or already moved: the move never overwrites a row still to be read.
                    if kept != r { (all.baseAddress! + kept * V).update(from: all.baseAddress! + r * V, count: V) }
                    kept += 1
                case .argmax:
                    argmaxes.append(Logits.argmax(all[r * V..<(r + 1) * V]))
                case .draw:
                    preconditionFailure("a backend that does not draw on its device was asked to")
                }
            }
        }
        let none = [DrawnLogprobs?](repeating: nil, count: argmaxes.count)
        return try logits.withUnsafeMutableBufferPointer { try body(argmaxes, none, UnsafeMutableBufferPointer(rebasing: $0[0..<kept * V])) }
    }
}

/// What a step needs of one requested logits row.
public enum RowOutput: Sendable, Equatable {
    /// The index of the largest logit (greedy sampling).
    case argmax
    /// The logits themselves, on the host (the host samples: penalties, log-probabilities, or no device sampling).
    case logits
    /// A token drawn on the device.
    case draw(DeviceDraw)

    public var needsLogits: Bool { self == .logits }
}

/// A draw as the engine's host sampler makes it, for a device to make instead: the penalties (nil: none), the
/// logits scaled by `inverseTemperature`, truncated by top-k (0: off), min-p (0: off) and top-p (1: off), and the
/// kept weights walked to `uniform` (in [0, 1), from the request's random state: the same stream as on the host).
/// A greedy row with penalties is the draw of top-k 1 at temperature 1.
public struct DeviceDraw: Sendable, Equatable {
    public var inverseTemperature: Float
    public var topK: Int
    public var topP: Float
    public var minP: Float
    public var uniform: Float
    public var penalties: Penalties?
    /// Log-probabilities to report (nil: none; n: the drawn token's and the n most likely tokens', of the penalized
    /// and scaled logits before truncation, as the host sampler reports them).
    public var logprobs: Int?
    /// The most top log-probabilities a device draw reports (OpenAI's `top_logprobs` limit); more go to the host.
    public static let maxTopLogprobs = 20

    public init(inverseTemperature: Float, topK: Int, topP: Float, minP: Float, uniform: Float, penalties: Penalties? = nil,
                logprobs: Int? = nil) {
        self.inverseTemperature = inverseTemperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.uniform = uniform
        self.penalties = penalties
        self.logprobs = logprobs
    }
}

/// The log-probabilities of a drawn row: the drawn token's, and the `n` most likely tokens' (most likely first, equal
/// logits by id).
public struct DrawnLogprobs: Sendable {
    public var logprob: Float
    public var top: [(token: Int, logprob: Float)]

    public init(logprob: Float, top: [(token: Int, logprob: Float)]) {
        self.logprob = logprob
        self.top = top
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
