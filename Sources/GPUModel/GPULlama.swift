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
        var wq: UInt64, wk: UInt64, wv: UInt64, wo: UInt64, wGate: UInt64, wUp: UInt64, wDown: UInt64
        var bq: UInt64?, bk: UInt64?, bv: UInt64?
    }

    let embedding: UInt64, output: UInt64, outputNorm: UInt64
    let layers: [Layer]
    public let kCache: UInt64, vCache: UInt64
    // Scratch sized for `maxTokens` rows.
    let x, xn, q, k, v, attn, attnB, gate, up, act, delta, normed, logits: UInt64
    let ints: UInt64
    let intCapacity: Int
    public private(set) var weightBytes = 0

    /// Loads `checkpoint` onto the device and allocates a KV cache of `numBlocks` × `blockSize` tokens.
    /// Element size of weights and GEMM inputs: 2 (bf16) or 4 (fp32, the exactness check mode).
    public let gemmBytes: Int

    public init(checkpoint: LlamaCheckpoint, gpu: GPUContext, blockSize: Int, numBlocks: Int, maxTokens: Int = 2048,
                maxLogitRows: Int = 256, fp32: Bool = false, progress: ((Int, Int) -> Void)? = nil) throws {
        let c = checkpoint.config
        config = c
        self.gpu = gpu
        self.blockSize = blockSize
        self.numBlocks = numBlocks
        self.maxTokens = maxTokens
        self.maxLogitRows = maxLogitRows
        gemmBytes = fp32 ? 4 : 2
        let eb = gemmBytes
        functions = try gpu.module(source: GPUKernels.source, name: fp32 ? "llama-fp32" : "llama", functions: GPUKernels.names,
                                   options: fp32 ? ["-DGEMM_FP32"] : [])
        let store = checkpoint.store, naming = checkpoint.naming
        var bytes = 0
        func info(_ name: String, _ shape: [Int]) throws -> GGUFTensorInfo {
            guard let info = store.tensors[name] else { throw ModelFileError.malformed(path: store.path, field: name, "missing tensor") }
            guard info.dimensions == shape else { throw ModelFileError.malformed(path: store.path, field: name, "shape \(info.dimensions), expected \(shape)") }
            return info
        }
        /// A [rows × cols] matrix as bf16 on the device (bf16 sources are copied as they are).
        func matrix(_ name: String, rows: Int, cols: Int, rowOrder: [Int]? = nil) throws -> UInt64 {
            let i = try info(name, [cols, rows])
            let raw = store.bytes(of: i)
            let ptr = try gpu.allocate(rows * cols * eb)
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
            return try Self.upload(values, gpu)
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
            layers.append(Layer(
                attnNorm: try vector(n("attnNorm"), d), ffnNorm: try vector(n("ffnNorm"), d),
                wq: try matrix(n("q"), rows: qd, cols: d, rowOrder: qOrder), wk: try matrix(n("k"), rows: kv, cols: d, rowOrder: kOrder),
                wv: try matrix(n("v"), rows: kv, cols: d), wo: try matrix(n("o"), rows: d, cols: qd),
                wGate: try matrix(n("gate"), rows: f, cols: d), wUp: try matrix(n("up"), rows: f, cols: d), wDown: try matrix(n("down"), rows: d, cols: f),
                bq: try optionalVector(n("bq"), qd), bk: try optionalVector(n("bk"), kv), bv: try optionalVector(n("bv"), kv)))
        }
        progress?(c.layers, c.layers)
        self.layers = layers
        weightBytes = bytes
        inverseFrequencies = try Self.upload(checkpoint.inverseFrequencies, gpu)
        let cacheFloats = numBlocks * c.layers * blockSize * kv
        kCache = try gpu.allocate(cacheFloats * 4)
        vCache = try gpu.allocate(cacheFloats * 4)
        let T = maxTokens
        x = try gpu.allocate(T * d * 4); xn = try gpu.allocate(T * max(d, qd) * eb)
        q = try gpu.allocate(T * qd * 4); k = try gpu.allocate(T * kv * 4); v = try gpu.allocate(T * kv * 4)
        attn = try gpu.allocate(T * qd * 4); attnB = try gpu.allocate(T * qd * eb)
        gate = try gpu.allocate(T * f * 4); up = try gpu.allocate(T * f * 4); act = try gpu.allocate(T * f * eb)
        delta = try gpu.allocate(T * d * 4); normed = try gpu.allocate(maxLogitRows * d * 4)
        logits = try gpu.allocate(maxLogitRows * c.vocabSize * 4)
        intCapacity = 8 * T + numBlocks * 4 + 16
        ints = try gpu.allocate(intCapacity * 4)
    }

    static func upload(_ values: [Float], _ gpu: GPUContext) throws -> UInt64 {
        let ptr = try gpu.allocate(values.count * 4)
        try values.withUnsafeBytes { try gpu.upload($0.baseAddress!, bytes: $0.count, to: ptr) }
        return ptr
    }

    /// fp32 → bf16, round to nearest even (as torch does).
    @inline(__always)
    static func bf16(_ f: Float) -> UInt16 {
        let u = f.bitPattern
        if f.isNaN { return UInt16(u >> 16) | 0x40 }
        return UInt16((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }

    /// One forward pass; returns the requested logits rows [rows × vocab] (fp32, on the host).
    public func forward(_ batch: [SequenceStep]) throws -> [Float] {
        try gpu.makeCurrent()  // the engine calls from its own thread; the context is per thread
        let c = config
        let D = c.hiddenSize, KV = c.kvDim, F = c.ffnSize, QD = c.heads * c.headDim, V = c.vocabSize
        var tokens: [Int32] = [], positions: [Int32] = [], rowBlock: [Int32] = [], rowSlot: [Int32] = [], rowTable: [Int32] = []
        var tables: [Int32] = [], selected: [Int32] = []
        for step in batch {
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
        guard T > 0 else { return [] }
        precondition(T <= maxTokens && selected.count <= maxLogitRows, "batch larger than the GPU scratch buffers")
        // All integer metadata in one upload: tokens | positions | rowBlock | rowSlot | rowTable | selected | tables.
        let meta = tokens + positions + rowBlock + rowSlot + rowTable + selected + tables
        precondition(meta.count <= intCapacity)
        try meta.withUnsafeBytes { try gpu.upload($0.baseAddress!, bytes: $0.count, to: ints) }
        func at(_ i: Int) -> UInt64 { ints + UInt64(i * 4) }
        let (pTokens, pPos, pBlock, pSlot, pTable, pSelected, pTables) =
            (at(0), at(T), at(2 * T), at(3 * T), at(4 * T), at(5 * T), at(5 * T + selected.count))

        try launch("embed", grid: T, block: 256, [.pointer(embedding), .pointer(pTokens), .pointer(x), .int32(Int32(D))])
        for (l, w) in layers.enumerated() {
            try launch("rmsnorm_bf16", grid: T, block: 256, [.pointer(x), .pointer(w.attnNorm), .pointer(xn), .int32(Int32(D)), .float(c.rmsEps)])
            try gemm(xn, w.wq, q, rows: T, inputs: D, outputs: QD)
            try gemm(xn, w.wk, k, rows: T, inputs: D, outputs: KV)
            try gemm(xn, w.wv, v, rows: T, inputs: D, outputs: KV)
            if let b = w.bq { try addBias(q, b, T, QD) }
            if let b = w.bk { try addBias(k, b, T, KV) }
            if let b = w.bv { try addBias(v, b, T, KV) }
            try launch("rope", grid: T, block: 128, [.pointer(q), .pointer(pPos), .pointer(inverseFrequencies), .int32(Int32(c.heads)), .int32(Int32(c.headDim))])
            try launch("rope", grid: T, block: 128, [.pointer(k), .pointer(pPos), .pointer(inverseFrequencies), .int32(Int32(c.kvHeads)), .int32(Int32(c.headDim))])
            try launch("kv_write", grid: T, block: 256, [.pointer(k), .pointer(v), .pointer(kCache), .pointer(vCache), .pointer(pBlock), .pointer(pSlot),
                                                          .int32(Int32(l)), .int32(Int32(c.layers)), .int32(Int32(blockSize)), .int32(Int32(KV))])
            let maxPositions = Int(positions.max()!) + 1
            try gpu.launch(functions["attention"]!, grid: (UInt32(T), UInt32(c.heads), 1), block: (128, 1, 1), sharedBytes: UInt32(maxPositions * 4), [
                .pointer(q), .pointer(kCache), .pointer(vCache), .pointer(attn), .pointer(pPos), .pointer(pTable), .pointer(pTables),
                .int32(Int32(l)), .int32(Int32(c.layers)), .int32(Int32(blockSize)), .int32(Int32(c.heads)), .int32(Int32(c.kvHeads)),
                .int32(Int32(c.headDim)), .float(1 / Float(c.headDim).squareRoot())], name: "attention")
            try elementwise("to_bf16", T * QD, [.pointer(attn), .pointer(attnB)])
            try gemm(attnB, w.wo, delta, rows: T, inputs: QD, outputs: D)
            try elementwise("residual_add", T * D, [.pointer(x), .pointer(delta)])
            try launch("rmsnorm_bf16", grid: T, block: 256, [.pointer(x), .pointer(w.ffnNorm), .pointer(xn), .int32(Int32(D)), .float(c.rmsEps)])
            try gemm(xn, w.wGate, gate, rows: T, inputs: D, outputs: F)
            try gemm(xn, w.wUp, up, rows: T, inputs: D, outputs: F)
            try elementwise("swiglu_bf16", T * F, [.pointer(gate), .pointer(up), .pointer(act)])
            try gemm(act, w.wDown, delta, rows: T, inputs: F, outputs: D)
            try elementwise("residual_add", T * D, [.pointer(x), .pointer(delta)])
        }
        let rows = selected.count
        guard rows > 0 else {
            try gpu.synchronize()
            return []
        }
        try launch("gather_rows", grid: rows, block: 256, [.pointer(x), .pointer(pSelected), .pointer(normed), .int32(Int32(D))])
        try launch("rmsnorm_bf16", grid: rows, block: 256, [.pointer(normed), .pointer(outputNorm), .pointer(xn), .int32(Int32(D)), .float(c.rmsEps)])
        try gemm(xn, output, logits, rows: rows, inputs: D, outputs: V)
        var out = [Float](repeating: 0, count: rows * V)
        try out.withUnsafeMutableBytes { try gpu.download(logits, bytes: $0.count, into: $0.baseAddress!) }
        return out
    }

    private func launch(_ name: String, grid: Int, block: Int, _ args: [KernelArgument]) throws {
        try gpu.launch(functions[name]!, grid: (UInt32(grid), 1, 1), block: (UInt32(block), 1, 1), args, name: name)
    }

    private func elementwise(_ name: String, _ n: Int, _ args: [KernelArgument]) throws {
        try gpu.launch(functions[name]!, grid: (UInt32((n + 255) / 256), 1, 1), block: (256, 1, 1), args + [.int64(Int64(n))], name: name)
    }

    private func addBias(_ y: UInt64, _ b: UInt64, _ rows: Int, _ n: Int) throws {
        try gpu.launch(functions["add_bias"]!, grid: (UInt32((rows * n + 255) / 256), 1, 1), block: (256, 1, 1),
                       [.pointer(y), .pointer(b), .int32(Int32(n)), .int64(Int64(rows * n))], name: "add_bias")
    }

    /// y[rows × outputs] (fp32) = x[rows × inputs] (bf16) · W[outputs × inputs]ᵀ (bf16), row-major throughout:
    /// in cuBLAS's column-major terms C[outputs × rows] = Wᵀ-op(W) · X.
    private func gemm(_ x: UInt64, _ w: UInt64, _ y: UInt64, rows: Int, inputs: Int, outputs: Int) throws {
        var alpha: Float = 1, beta: Float = 0
        let type = gemmBytes == 4 ? CuBLAS.r32F : CuBLAS.r16BF
        let status = gpu.blas.gemmEx(gpu.blas.handle, CuBLAS.opT, CuBLAS.opN, Int32(outputs), Int32(rows), Int32(inputs), &alpha,
                                     UnsafeRawPointer(bitPattern: UInt(w)), type, Int32(inputs),
                                     UnsafeRawPointer(bitPattern: UInt(x)), type, Int32(inputs), &beta,
                                     UnsafeMutableRawPointer(bitPattern: UInt(y)), CuBLAS.r32F, Int32(outputs), CuBLAS.compute32F, -1)
        guard status == 0 else { throw GPUError.call("cublasGemmEx", code: status, message: "\(rows)×\(inputs)·\(inputs)×\(outputs)") }
    }
}

extension GPULlama: ForwardBackend {
    public func exportKV(blockTable: [Int], range: Range<Int>, into buffer: UnsafeMutablePointer<Float>) throws {
        try transfer(blockTable: blockTable, range: range, buffer: buffer, bufferTokens: range.count, bufferOffset: 0, toDevice: false)
    }

    public func importKV(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int, bufferOffset: Int) throws {
        try transfer(blockTable: blockTable, range: range, buffer: UnsafeMutablePointer(mutating: buffer), bufferTokens: bufferTokens,
                     bufferOffset: bufferOffset, toDevice: true)
    }

    /// One copy per run of consecutive slots in a block, per layer and side: the CPU cache's layout rule.
    private func transfer(blockTable: [Int], range: Range<Int>, buffer: UnsafeMutablePointer<Float>, bufferTokens: Int, bufferOffset: Int,
                          toDevice: Bool) throws {
        try gpu.makeCurrent()
        let layout = PagedLayout(layers: config.layers, blockSize: blockSize, kvDim: config.kvDim)
        try layout.forEachRun(blockTable: blockTable, range: range, bufferTokens: bufferTokens, bufferOffset: bufferOffset) { side, at, flatAt, count in
            let device = (side == 0 ? kCache : vCache) + UInt64(at * 4)
            if toDevice {
                try gpu.upload(buffer + flatAt, bytes: count * 4, to: device)
            } else {
                try gpu.download(device, bytes: count * 4, into: buffer + flatAt)
            }
        }
    }
}
