import CUDA
import Foundation
import ModelFiles
import Models
import TensorKit

/// The Llama-family forward pass on an NVIDIA GPU: bf16 weights, cuBLAS GEMMs (fp32 accumulation and output),
/// NVRTC kernels for the rest, fp32 activations and a paged fp32 KV cache in device memory. Same batch interface
/// as the CPU model (`SequenceStep`s with block tables).
public final class GPULlama: @unchecked Sendable {
    public let config: ModelConfig
    public let gpu: GPUContext
    public let blockSize: Int
    public let numBlocks: Int
    public let maxTokens: Int
    let maxLogitRows: Int
    let functions: [String: OpaquePointer]
    let inverseFrequencies: UInt64

    struct Layer {
        var attnNorm: UInt64, ffnNorm: UInt64
        /// Q, K and V stacked into one [(heads + 2·kvHeads)·headDim × hidden] matrix, gate and up into one
        /// [2·ffn × hidden]: one GEMM each instead of three and two.
        var wqkv: UInt64, wo: UInt64, wGateUp: UInt64, wDown: UInt64
        var bqkv: UInt64?
    }

    let embedding: UInt64, output: UInt64, outputNorm: UInt64
    let layers: [Layer]
    public let kCache: UInt64, vCache: UInt64
    /// bf16 copies of kCache and vCache (same layout), read by the tensor-core prefill attention; 0 where it does not run.
    let kShadow: UInt64, vShadow: UInt64
    // Scratch sized for `maxTokens` rows.
    let x, xn, qkv, q, attnB, gateUp, act, delta, normed, logits: UInt64
    let ints: UInt64
    /// argmax_rows' buffers (`GPUArgmax`).
    let argmax: GPUArgmax
    /// draw_rows, its parameters and scratch (`GPUDraw`; its own module; nil where it could not be built or run).
    let drawing: GPUDraw?
    let intCapacity: Int
    /// Split-attention partials (few-row steps): [row][head][split][head_dim + 2].
    let partials: UInt64
    /// attention_decode's per-(row, K/V head) count of finished splits (zero between launches).
    let splitCounters: UInt64
    /// Page-locked staging for the step metadata, for every logits row a step may ask for (`maxLogitRows`: the
    /// sampler reads them there) and for their argmaxes: copies from pageable memory go through a driver bounce
    /// buffer (~130 µs for one row of a 128k vocabulary; 16 MB, 32 rows, took 1.36 ms so).
    let hostMeta: UnsafeMutableRawPointer, hostLogits: UnsafeMutableRawPointer, hostArgmaxes: UnsafeMutableRawPointer
    static let partialBytes = 64 << 20
    /// Rows per step up to which attention spreads splits over blocks (else tiles of rows share K/V loads) and
    /// GEMMs run as the GEMV kernel (else cuBLAS).
    static let splitAttentionRows = 64
    static let attentionSplit = 64, attentionTile = 16, flashTile = 64
    /// Floats of padding after each K row in decode attention's shared memory (the kernels' ATT_KPAD).
    static let attentionKeyPad = 4

    let gemms: GPUGemm
    public var batchInvariant: Bool { gemms.batchInvariant }
    public private(set) var weightBytes = 0
    /// Whether every launch's argument count is checked against its kernel's parameters (drivers of CUDA 12.4+).
    public var launchesChecked: Bool { gpu.parameterCount(of: functions["embed"]!) == 4 }
    /// Decode steps (one token per sequence, last logits) recorded as CUDA graphs, by batch size;
    /// `SWIFTWISE_CUDA_GRAPHS=0` runs every step eagerly.
    private var graphs: [Int: OpaquePointer] = [:]
    let useGraphs = ProcessInfo.processInfo.environment["SWIFTWISE_CUDA_GRAPHS"] != "0"
    /// When set, every operation runs eagerly, between two events, behind a spin kernel that lets the host queue
    /// the whole step first; its GPU time is added here under its name: where a step's time goes
    /// (`swiftwise gpu-check --profile`). "step" is the whole step's GPU time.
    public var profile: [String: (calls: Int, seconds: Double)]?
    /// When true, each step's GPU time (events around the whole step, graph or eager) is added to `stepGPUSeconds`:
    /// the difference to the wall time is the host's part of a step.
    public var measureStepGPUTime = false
    public var stepGPUSeconds = 0.0
    private lazy var stepEvents: (OpaquePointer, OpaquePointer)? = try? (gpu.makeEvent(), gpu.makeEvent())
    var profileEvents: [OpaquePointer] = []
    var profileMarks: [(name: String, start: Int, end: Int)] = []
    var profileUsed = 0
    static let maxGraphs = 64
    /// Steps of few rows on cuBLAS split their GEMM inputs into bf16 pairs (`splitsInputs`); `SWIFTWISE_SPLIT_INPUTS=0`
    /// keeps plain bf16 inputs.
    public var splitInputs = ProcessInfo.processInfo.environment["SWIFTWISE_SPLIT_INPUTS"] != "0"
    /// Steps of many rows write the gate|up GEMM's output as bf16 (`SWIFTWISE_BF16_GATE_UP=0`: fp32).
    public var bf16GateUpOutput = ProcessInfo.processInfo.environment["SWIFTWISE_BF16_GATE_UP"] != "0"
    /// Sampled rows without penalties or log-probabilities are drawn on the device (`draw_rows`), one int a row to the
    /// host, unless `SWIFTWISE_DEVICE_SAMPLING=0` (or false here) sends their logits to the host sampler. gpu-check
    /// compares draw_rows with the exact reference (`ExactDraw`) on every run.
    public var drawsOnDevice: Bool {
        get { deviceSampling && drawing != nil }
        set { deviceSampling = newValue }
    }
    private var deviceSampling = ProcessInfo.processInfo.environment["SWIFTWISE_DEVICE_SAMPLING"] != "0"
    /// Drawn rows report log-probabilities computed on the device (up to `DeviceDraw.maxTopLogprobs` top tokens;
    /// gpu-check compares them with the host sampler's on every run) unless `SWIFTWISE_DEVICE_LOGPROBS=0` (or false
    /// here) sends rows with logprobs to the host sampler.
    public var drawsLogprobsOnDevice: Bool {
        get { deviceLogprobs && drawsOnDevice }
        set { deviceLogprobs = newValue }
    }
    private var deviceLogprobs = ProcessInfo.processInfo.environment["SWIFTWISE_DEVICE_LOGPROBS"] != "0"
    /// Decode steps run the fused GEMV kernels (`SWIFTWISE_FUSED_DECODE=0`, or false here, runs the separate ones).
    public var fusedDecode = ProcessInfo.processInfo.environment["SWIFTWISE_FUSED_DECODE"] != "0"
    /// Batch-1 decode steps as one persistent kernel (`decode_step_persistent`; same bits as the fused kernels);
    /// `SWIFTWISE_PERSISTENT_DECODE=0` launches the fused kernels one by one.
    public var persistentDecode = ProcessInfo.processInfo.environment["SWIFTWISE_PERSISTENT_DECODE"] != "0"
    /// `SWIFTWISE_KERNEL_DEFINES="-DNAME=1 ..."`: extra NVRTC options for the model's kernels, for timing a kernel
    /// variant against the default in one run (the kernel cache is keyed by the options too). Not for production.
    static let experimentDefines = (ProcessInfo.processInfo.environment["SWIFTWISE_KERNEL_DEFINES"] ?? "")
        .split(separator: " ").map(String.init)
    /// Whether the device allows decode_step_persistent's shared memory (checked at load).
    public private(set) var persistentDecodeAvailable = false
    /// Where decode_step_persistent writes each block's barrier arrival and departure times (`PersistentTrace.words`
    /// UInt64 words; gpu-check's phase timing), or 0.
    public var persistentTrace: UInt64 = 0
    /// The weights, KV cache and scratch buffers (freed with the model).
    let memory: DeviceMemory
    /// The persistent kernel's per-layer weight pointers (8 words a layer) and its two barrier words.
    let layerTable: UInt64, persistentSync: UInt64

    /// Element size of weights and GEMM inputs: 2 (bf16) or 4 (fp32, the exactness check mode).
    public let gemmBytes: Int

    /// Loads `checkpoint` onto the device and allocates a KV cache of `numBlocks` × `blockSize` tokens.
    public convenience init(checkpoint: LlamaCheckpoint, gpu: GPUContext, blockSize: Int, numBlocks: Int, maxTokens: Int = 2048,
                            maxLogitRows: Int = 256, fp32: Bool = false, progress: ((Int, Int) -> Void)? = nil) throws {
        try self.init(checkpoint: checkpoint, gpu: gpu, blockSize: blockSize, cache: .blocks(numBlocks), maxTokens: maxTokens,
                      maxLogitRows: maxLogitRows, fp32: fp32, progress: progress)
    }

    /// Loads `checkpoint` onto the device and allocates a KV cache of `blockSize`-token blocks sized by `cache`.
    public init(checkpoint: LlamaCheckpoint, gpu: GPUContext, blockSize: Int, cache: KVCacheSize, maxTokens: Int = 2048,
                maxLogitRows: Int = 256, fp32: Bool = false, progress: ((Int, Int) -> Void)? = nil) throws {
        let c = checkpoint.config
        // rope_split keeps a row's rotation angles in shared memory for head dims up to 256.
        guard c.headDim <= 256 && c.headDim % 2 == 0 else {
            throw ModelFileError.unsupported(path: checkpoint.store.path, field: "head_dim", "head dim \(c.headDim) on the GPU (even, at most 256)")
        }
        config = c
        self.gpu = gpu
        let memory = DeviceMemory(gpu)  // everything below is freed with the model, or when loading fails
        self.memory = memory
        self.blockSize = blockSize
        self.maxTokens = maxTokens
        self.maxLogitRows = maxLogitRows
        gemmBytes = fp32 ? 4 : 2
        let eb = gemmBytes
        // --fmad=false: no implicit FMA contraction, so kernels that must agree bit for bit (attention's two launch
        // shapes) compute exactly what they spell; the GEMV spells its FMAs.
        functions = try gpu.module(source: GPUKernels.source, name: fp32 ? "llama-fp32" : "llama", functions: GPUKernels.names,
                                   options: (fp32 ? ["-DGEMM_FP32"] : []) + ["--fmad=false"] + Self.experimentDefines)
        gemms = GPUGemm(gpu: gpu, functions: functions, elementBytes: fp32 ? 4 : 2)
        let store = checkpoint.store, naming = checkpoint.naming
        var bytes = 0
        func info(_ name: String, _ shape: [Int]) throws -> GGUFTensorInfo {
            guard let info = store.tensors[name] else { throw ModelFileError.malformed(path: store.path, field: name, "missing tensor") }
            guard info.dimensions == shape else { throw ModelFileError.malformed(path: store.path, field: name, "shape \(info.dimensions), expected \(shape)") }
            return info
        }
        /// A [rows × cols] matrix as bf16 on the device (bf16 sources are copied as they are).
        /// Into `destination` (a part of a stacked matrix) when given, else a fresh allocation.
        func matrix(_ name: String, rows: Int, cols: Int, rowOrder: [Int]? = nil, into destination: UInt64? = nil) throws -> UInt64 {
            let i = try info(name, [cols, rows])
            let raw = store.bytes(of: i)
            let ptr = try destination ?? memory.allocate(rows * cols * eb)
            bytes += rows * cols * eb
            if i.type == .bf16 && rowOrder == nil && eb == 2 {
                try gpu.upload(raw.baseAddress!, bytes: rows * cols * 2, to: ptr)
                return ptr
            }
            var row = [Float](repeating: 0, count: cols)
            if eb == 4 {
                var out = [Float](repeating: 0, count: rows * cols)
                for r in 0..<rows {
                    out.withUnsafeMutableBufferPointer { Dequantize.elements(raw, type: i.type, start: (rowOrder?[r] ?? r) * cols, count: cols, into: $0.baseAddress! + r * cols) }
                }
                try out.withUnsafeBytes { try gpu.upload($0.baseAddress!, bytes: $0.count, to: ptr) }
                return ptr
            }
            var out = [UInt16](repeating: 0, count: rows * cols)
            for r in 0..<rows {
                let src = rowOrder?[r] ?? r
                row.withUnsafeMutableBufferPointer { Dequantize.elements(raw, type: i.type, start: src * cols, count: cols, into: $0.baseAddress!) }
                for j in 0..<cols { out[r * cols + j] = Self.bf16(row[j]) }
            }
            try out.withUnsafeBytes { try gpu.upload($0.baseAddress!, bytes: $0.count, to: ptr) }
            return ptr
        }
        func vector(_ name: String, _ n: Int) throws -> UInt64 {
            let values = Dequantize.tensor(store, try info(name, [n]))
            return try memory.upload(values)
        }
        func optionalVector(_ name: String, _ n: Int) throws -> UInt64? { store.tensors[name] == nil ? nil : try vector(name, n) }
        let d = c.hiddenSize, kv = c.kvDim, f = c.ffnSize, qd = c.heads * c.headDim
        embedding = try matrix(naming.global("embedding"), rows: c.vocabSize, cols: d)
        outputNorm = try vector(naming.global("outputNorm"), d)
        let outputName = naming.global("output")
        output = store.tensors[outputName] == nil || c.tiedEmbeddings ? embedding : try matrix(outputName, rows: c.vocabSize, cols: d)
        let qOrder = checkpoint.permutedQK ? LlamaWeights.unpermutedOrder(heads: c.heads, headDim: c.headDim) : nil
        let kOrder = checkpoint.permutedQK ? LlamaWeights.unpermutedOrder(heads: c.kvHeads, headDim: c.headDim) : nil
        var layers: [Layer] = []
        for l in 0..<c.layers {
            progress?(l, c.layers)
            func n(_ role: String) -> String { naming.layer(l, role) }
            let wqkv = try memory.allocate((qd + 2 * kv) * d * eb)
            _ = try matrix(n("q"), rows: qd, cols: d, rowOrder: qOrder, into: wqkv)
            _ = try matrix(n("k"), rows: kv, cols: d, rowOrder: kOrder, into: wqkv + UInt64(qd * d * eb))
            _ = try matrix(n("v"), rows: kv, cols: d, into: wqkv + UInt64((qd + kv) * d * eb))
            let wGateUp = try memory.allocate(2 * f * d * eb)
            _ = try matrix(n("gate"), rows: f, cols: d, into: wGateUp)
            _ = try matrix(n("up"), rows: f, cols: d, into: wGateUp + UInt64(f * d * eb))
            var bqkv: UInt64?
            if [n("bq"), n("bk"), n("bv")].contains(where: { store.tensors[$0] != nil }) {  // missing parts are zero
                func part(_ name: String, _ count: Int) throws -> [Float] {
                    store.tensors[name] == nil ? [Float](repeating: 0, count: count) : Dequantize.tensor(store, try info(name, [count]))
                }
                bqkv = try memory.upload(try part(n("bq"), qd) + part(n("bk"), kv) + part(n("bv"), kv))
            }
            layers.append(Layer(
                attnNorm: try vector(n("attnNorm"), d), ffnNorm: try vector(n("ffnNorm"), d),
                wqkv: wqkv, wo: try matrix(n("o"), rows: d, cols: qd), wGateUp: wGateUp, wDown: try matrix(n("down"), rows: d, cols: f),
                bqkv: bqkv))
        }
        progress?(c.layers, c.layers)
        self.layers = layers
        weightBytes = bytes
        inverseFrequencies = try memory.upload(checkpoint.inverseFrequencies)
        // Sized now, from what the device has left with the weights on it (vLLM measures after loading too).
        let numBlocks = try cache.blocks(gpu.memory, blockBytes: Self.cacheBytesPerToken(c, gemmBytes: eb, batchInvariant: gemms.batchInvariant) * blockSize,
                                         scratchBytes: Self.scratchSizes(c, maxTokens: maxTokens, maxLogitRows: maxLogitRows, numBlocks: 0, gemmBytes: eb).total)
        self.numBlocks = numBlocks
        let cacheFloats = numBlocks * c.layers * blockSize * kv
        kCache = try memory.allocate(cacheFloats * 4)
        vCache = try memory.allocate(cacheFloats * 4)
        let shadow = Self.hasKVShadow(headDim: c.headDim, gemmBytes: eb, batchInvariant: gemms.batchInvariant)
        kShadow = shadow ? try memory.allocate(cacheFloats * 2) : 0
        vShadow = shadow ? try memory.allocate(cacheFloats * 2) : 0
        let sizes = Self.scratchSizes(c, maxTokens: maxTokens, maxLogitRows: maxLogitRows, numBlocks: numBlocks, gemmBytes: eb)
        x = try memory.allocate(sizes.x); xn = try memory.allocate(sizes.xn)
        qkv = try memory.allocate(sizes.qkv)
        q = try memory.allocate(sizes.q); attnB = try memory.allocate(sizes.attnB)
        gateUp = try memory.allocate(sizes.gateUp); act = try memory.allocate(sizes.act)
        delta = try memory.allocate(sizes.delta); normed = try memory.allocate(sizes.normed)
        logits = try memory.allocate(sizes.logits)
        intCapacity = sizes.ints
        ints = try memory.allocate(intCapacity * 4)
        partials = try memory.allocate(sizes.partials)
        argmax = try GPUArgmax(memory, rows: maxLogitRows)
        drawing = GPUDraw.make(memory, rows: maxLogitRows, vocab: c.vocabSize)
        splitCounters = try memory.upload([UInt32](repeating: 0, count: Self.splitAttentionRows * c.kvHeads))
        try gpu.allowSharedMemory(functions["attention_decode"]!,
                                  bytes: Self.decodeAttentionSharedBytes(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim))
        hostMeta = try memory.allocateHost(intCapacity * 4)
        hostLogits = try memory.allocateHost(maxLogitRows * c.vocabSize * 4)
        hostArgmaxes = try memory.allocateHost(maxLogitRows * 4)
        try gpu.allowSharedMemory(functions["attention_tiled"]!, bytes: 2 * Self.attentionSplit * c.headDim * 4)
        for base in ["gemv_norm", "gemv_norm_swiglu", "gemv_norm_rope"] {
            for name in [base, base + GPUKernels.singleRowSuffix] {
                try gpu.allowSharedMemory(functions[name]!, bytes: Self.fusedSharedLimit)
            }
        }
        if c.headDim % 32 == 0 && c.headDim <= 128 {
            let flash = Self.flashKernel(headDim: c.headDim, heads: c.heads, kvHeads: c.kvHeads, gemmBytes: eb)
            try gpu.allowSharedMemory(functions[flash.name]!, bytes: flash.sharedBytes)
        }
        let table = layers.flatMap { l -> [UInt64] in [l.wqkv, l.wo, l.wGateUp, l.wDown, l.bqkv ?? 0, l.attnNorm, l.ffnNorm, 0] }
        layerTable = try memory.upload(table)
        persistentSync = try memory.upload([UInt32](repeating: 0, count: 2))  // decode_step_persistent's sync_words
        // Devices with less shared memory per block than the kernel needs run the fused kernels one by one.
        persistentDecodeAvailable = gpu.cooperativeLaunch
            && (try? gpu.allowSharedMemory(functions["decode_step_persistent"]!, bytes: Self.persistentDecodeShared(c, gemmBytes: eb).total)) != nil
    }

    deinit { graphs.values.forEach(gpu.destroy(graph:)) }

    /// fp32 → bf16, round to nearest even (as torch does).
    @inline(__always)
    static func bf16(_ f: Float) -> UInt16 {
        let u = f.bitPattern
        if f.isNaN { return UInt16(u >> 16) | 0x40 }
        return UInt16((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }

    /// Queues one forward pass (its logits rows left in `logits`); returns the number of logits rows, nil for an
    /// empty batch. Synchronizes only when there are no rows. A profiled step is begun here and ended by the caller.
    func enqueueStep(_ batch: [SequenceStep]) throws -> Int? {
        try gpu.makeCurrent()  // the engine calls from its own thread; the context is per thread
        var tokens: [Int32] = [], positions: [Int32] = [], rowBlock: [Int32] = [], rowSlot: [Int32] = [], rowTable: [Int32] = []
        var tables: [Int32] = [], selected: [Int32] = [], tiles: [Int32] = []
        let rowCount = batch.reduce(0) { $0 + $1.tokens.count }
        let flash = !batchInvariant && rowCount > Self.splitAttentionRows && config.headDim % 32 == 0 && config.headDim <= 128
        let tile = flash ? Self.flashTile : Self.attentionTile
        for step in batch {
            for first in stride(from: tokens.count, to: tokens.count + step.tokens.count, by: tile) {
                tiles += [Int32(first), Int32(min(tile, tokens.count + step.tokens.count - first))]
            }
            let tableStart = Int32(tables.count)
            tables += step.blockTable.map(Int32.init)
            for (i, token) in step.tokens.enumerated() {
                let p = step.start + i
                tokens.append(Int32(token))
                positions.append(Int32(p))
                rowBlock.append(Int32(step.blockTable[p / blockSize]))
                rowSlot.append(Int32(p % blockSize))
                rowTable.append(tableStart)
            }
            switch step.logits {
            case .none: break
            case .last: selected.append(Int32(tokens.count - 1))
            case .all: selected += (tokens.count - step.tokens.count..<tokens.count).map(Int32.init)
            }
        }
        let T = tokens.count
        guard T > 0 else { return nil }
        precondition(T <= maxTokens && selected.count <= maxLogitRows, "batch larger than the GPU scratch buffers")
        // All integer metadata in one upload: tokens | positions | rowBlock | rowSlot | rowTable | selected | tables.
        let meta = tokens + positions + rowBlock + rowSlot + rowTable + selected + tiles + tables
        precondition(meta.count <= intCapacity)
        if profile != nil { try beginProfiledStep() }
        try timed("upload metadata") {  // from page-locked memory, queued before the step (the last step's download synchronized)
            meta.withUnsafeBytes { hostMeta.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            try gpu.uploadAsync(hostMeta, bytes: meta.count * 4, to: ints)
        }
        func at(_ i: Int) -> UInt64 { ints + UInt64(i * 4) }
        let (pTokens, pPos, pBlock, pSlot, pTable, pSelected, pTiles, pTables) =
            (at(0), at(T), at(2 * T), at(3 * T), at(4 * T), at(5 * T), at(5 * T + selected.count), at(5 * T + selected.count + tiles.count))

        let rows = selected.count
        let pointers = StepPointers(tokens: pTokens, positions: pPos, blocks: pBlock, slots: pSlot, tables: pTables, rowTable: pTable,
                                    selected: pSelected, tiles: pTiles, tileCount: tiles.count / 2)
        // Split attention when the partials fit; graph keys carry the split count rounded up to a power of two.
        let neededSplits = (Int(positions.max()!) + Self.attentionSplit) / Self.attentionSplit
        let splitBucket = max(8, 1 << (Int.bitWidth - (neededSplits - 1).leadingZeroBitCount))
        let partialRowBytes = config.heads * (config.headDim + 2) * 4
        let shape: AttentionShape = T <= Self.splitAttentionRows && T * splitBucket * partialRowBytes <= Self.partialBytes
            ? .split(splitBucket) : flash ? .flash : .tiled
        let decodeOnly = batch.allSatisfy { step in
            if case .last = step.logits { return step.tokens.count == 1 } else { return false }
        }
        if measureStepGPUTime, let (start, _) = stepEvents { try gpu.record(start) }
        func run() throws {
            if useGraphs && decodeOnly && profile == nil, case .split(let splits) = shape {
                // Fusion, the persistent kernel and dependent launch are part of what was recorded.
                let persistent = usesPersistentDecode(rows: T, logitRows: rows, attention: shape)
                let key = T << 40 | splits << 3 | (persistent ? 4 : 0) | (fusedDecode ? 2 : 0) | (gpu.dependentLaunch ? 1 : 0)
                if graphs[key] == nil && graphs.count < Self.maxGraphs {
                    graphs[key] = try gpu.capture { try encode(T: T, rows: rows, attention: shape, pointers) }
                }
                if let graph = graphs[key] {
                    try gpu.replay(graph)
                } else {
                    try encode(T: T, rows: rows, attention: shape, pointers)
                }
            } else {
                try encode(T: T, rows: rows, attention: shape, pointers)
            }
        }
        do {
            try run()
        } catch where usesPersistentDecode(rows: T, logitRows: rows, attention: shape) {
            // A driver that cannot launch (or record) the cooperative kernel: the fused kernels from now on.
            persistentDecodeAvailable = false
            FileHandle.standardError.write(Data("swiftwise: the persistent decode kernel failed (\(error)); decode steps use the fused kernels\n".utf8))
            try run()
        }
        if measureStepGPUTime, let (start, end) = stepEvents {  // the step's kernels, without the logits download
            try gpu.record(end)
            try gpu.synchronize()
            stepGPUSeconds += try gpu.seconds(from: start, to: end)
        }
        if rows == 0 { try gpu.synchronize() }
        return rows
    }
}
