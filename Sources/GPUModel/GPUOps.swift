import CUDA
import Foundation
import Models

/// The GPU kernels as `OpBackend` ops on host arrays (each call uploads its inputs, launches the same kernels the
/// forward pass launches, and downloads the result), for the op-by-op harness on a CUDA machine
/// (`swiftwise gpu-check --ops`). Attention runs in both launch shapes (split + combine, and tiled), which must agree
/// bit for bit; a difference is an error.
public final class GPUOps: OpBackend {
    public let name: String
    let gpu: GPUContext
    let functions: [String: OpaquePointer]
    let gemms: GPUGemm
    let elementBytes: Int

    /// Which attention kernels `attention` runs: the batch-invariant pair (split + merge, and tiled, which must agree
    /// bit for bit), the default mode's prefill kernel (flash style), or its decode kernel.
    public enum Attention: Sendable { case splitAndTiled, flash, decode }
    let attentionKernels: Attention
    /// RMSNorm, SwiGLU and decode attention write their outputs as bf16 pairs (high and low halves, as the forward
    /// pass does for GEMMs of few rows) and the ops return the pairs' sums: checked with `Tolerances.splitInputs`.
    public let splitInputs: Bool

    public init(gpu: GPUContext, fp32: Bool, attention: Attention = .splitAndTiled, splitInputs: Bool = false) throws {
        self.gpu = gpu
        self.attentionKernels = attention
        self.splitInputs = splitInputs && !fp32
        elementBytes = fp32 ? 4 : 2
        functions = try gpu.module(source: GPUKernels.source, name: fp32 ? "llama-fp32" : "llama", functions: GPUKernels.names,
                                   options: (fp32 ? ["-DGEMM_FP32"] : []) + ["--fmad=false"])
        gemms = GPUGemm(gpu: gpu, functions: functions, elementBytes: elementBytes)
        name = "GPU \(gpu.name) (\(fp32 ? "fp32" : "bf16") GEMM inputs\(gemms.batchInvariant ? ", batch invariant" : "")"
            + [.splitAndTiled: ", split and tiled attention)", .flash: ", \(fp32 ? "flash" : "tensor-core flash") attention)",
               .decode: ", decode attention)"][attention]!
            + (self.splitInputs ? " with split bf16 outputs" : "")
    }

    // MARK: buffers

    /// Device buffers of one call (`withScratch`).
    private struct Scratch {
        let memory: DeviceMemory
        init(_ gpu: GPUContext) { memory = DeviceMemory(gpu) }
        func floats(_ values: [Float]) throws -> UInt64 { try bytes(values) }
        func ints(_ values: [Int]) throws -> UInt64 { try bytes(values.map(Int32.init)) }
        func zeros(_ byteCount: Int) throws -> UInt64 { try bytes([UInt8](repeating: 0, count: max(byteCount, 1))) }
        func bytes<T>(_ values: [T]) throws -> UInt64 { try memory.upload(values) }
    }

    /// Runs one op with buffers that are freed once it returns, not before: Swift may end a local's lifetime at its
    /// last use, which would free an output buffer before its download.
    private func withScratch<R>(_ body: (Scratch) throws -> R) throws -> R {
        try gpu.makeCurrent()
        let scratch = Scratch(gpu)
        return try withExtendedLifetime(scratch) { try body(scratch) }
    }

    /// Host floats in the GEMM element type (bf16 words or fp32).
    private func gemmInput(_ values: [Float], _ scratch: Scratch) throws -> UInt64 {
        elementBytes == 4 ? try scratch.floats(values) : try scratch.bytes(values.map(GPULlama.bf16))
    }

    private func downloadFloats(_ ptr: UInt64, _ count: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try gpu.download(ptr, bytes: $0.count, into: $0.baseAddress!) }
        return out
    }

    private func downloadGemmElements(_ ptr: UInt64, _ count: Int) throws -> [Float] {
        if elementBytes == 4 { return try downloadFloats(ptr, count) }
        var words = [UInt16](repeating: 0, count: count)
        try words.withUnsafeMutableBytes { try gpu.download(ptr, bytes: $0.count, into: $0.baseAddress!) }
        return words.map { Float(bitPattern: UInt32($0) << 16) }
    }

    /// `count` outputs of a kernel that writes GEMM inputs; with `splitInputs`, the sums of their high halves and the
    /// low halves that follow them.
    private func downloadGemmOutput(_ ptr: UInt64, _ count: Int) throws -> [Float] {
        let hi = try downloadGemmElements(ptr, count)
        guard splitInputs else { return hi }
        let lo = try downloadGemmElements(ptr + UInt64(count * elementBytes), count)
        return zip(hi, lo).map { $0 + $1 }
    }

    // MARK: ops

    public func matmul(_ x: [Float], rows: Int, weight: [Float], outputs: Int) throws -> [Float] {
        try withScratch { scratch in
            let inputs = weight.count / outputs
            let y = try scratch.zeros(rows * outputs * 4)
            try gemms.run(try gemmInput(x, scratch), try gemmInput(weight, scratch), y, rows: rows, inputs: inputs, outputs: outputs)
            return try downloadFloats(y, rows * outputs)
        }
    }

    public func rmsNorm(_ x: [Float], rows: Int, weight: [Float], eps: Float) throws -> [Float] {
        try withScratch { scratch in
            let size = weight.count
            let out = try scratch.zeros(2 * x.count * elementBytes)
            try gpu.launch(functions["rmsnorm_bf16"]!, grid: (UInt32(rows), 1, 1), block: (256, 1, 1),
                           [.pointer(try scratch.floats(x)), .pointer(try scratch.floats(weight)), .pointer(out), .int32(Int32(size)), .float(eps),
                            .int64(splitInputs ? Int64(x.count) : 0)], name: "rmsnorm_bf16")
            return try downloadGemmOutput(out, x.count)
        }
    }

    public func rope(_ x: [Float], positions: [Int], heads: Int, headDim: Int, inverseFrequencies: [Float]) throws -> [Float] {
        try withScratch { scratch in
            // rope_split on a Q-only row (no K/V heads: nothing goes to the cache).
            let rows = positions.count
            let q = try scratch.zeros(x.count * 4), zeros = try scratch.ints([Int](repeating: 0, count: rows))
            try gpu.launch(functions["rope_split"]!, grid: (UInt32(rows), 1, 1), block: (128, 1, 1), [
                .pointer(try scratch.floats(x)), .pointer(q), .pointer(q), .pointer(q), .pointer(try scratch.ints(positions)),
                .pointer(try scratch.floats(inverseFrequencies)), .pointer(zeros), .pointer(zeros), .int32(0), .int32(1), .int32(1),
                .int32(Int32(heads)), .int32(0), .int32(Int32(headDim)), .int64(0), .pointer(0), .pointer(0)], name: "rope_split")
            return try downloadFloats(q, x.count)
        }
    }

    public func swiglu(gate: [Float], up: [Float]) throws -> [Float] {
        try withScratch { scratch in
            let n = gate.count
            let out = try scratch.zeros(2 * n * elementBytes)
            let blocks = (n + GPULlama.swigluColumnsPerBlock - 1) / GPULlama.swigluColumnsPerBlock
            try gpu.launch(functions["swiglu_bf16"]!, grid: (UInt32(blocks), 1, 1), block: (256, 1, 1),  // one row of n
                           [.pointer(try scratch.floats(gate + up)), .pointer(out), .int32(Int32(n)), .int64(0), .int64(splitInputs ? Int64(n) : 0)],
                           name: "swiglu_bf16")
            return try downloadGemmOutput(out, n)
        }
    }

    public func argmax(_ logits: [Float], rows: Int) throws -> [Int] {
        try withScratch { scratch in
            let argmax = try GPUArgmax(scratch.memory, rows: rows)
            try argmax.launch(functions["argmax_rows"]!, logits: try scratch.floats(logits), rows: rows, vocab: logits.count / rows)
            var picks = [Int32](repeating: 0, count: rows)
            try picks.withUnsafeMutableBytes { try gpu.download(argmax.out, bytes: $0.count, into: $0.baseAddress!) }
            return picks.map(Int.init)
        }
    }

    public func attention(q: [Float], k: [Float], v: [Float], positions: [Int], heads: Int, kvHeads: Int, headDim: Int) throws -> [Float] {
        try withScratch { scratch in
            let kvDim = kvHeads * headDim, n = k.count / kvDim, blockSize = 16, rows = positions.count
            let blocks = (n + blockSize - 1) / blockSize
            let table = Array((0..<blocks).reversed())  // not in order, as a real block table
            // Paged layout of one layer: [block][slot][kvDim].
            var kc = [Float](repeating: 0, count: blocks * blockSize * kvDim), vc = kc
            for j in 0..<n {
                let at = (table[j / blockSize] * blockSize + j % blockSize) * kvDim
                for i in 0..<kvDim { kc[at + i] = k[j * kvDim + i]; vc[at + i] = v[j * kvDim + i] }
            }
            let (kPtr, vPtr, qPtr) = (try scratch.floats(kc), try scratch.floats(vc), try scratch.floats(q))
            let (pos, rowTable, tables) = (try scratch.ints(positions), try scratch.ints([Int](repeating: 0, count: rows)), try scratch.ints(table))
            let scale = 1 / Float(headDim).squareRoot()
            let shape: [KernelArgument] = [.int32(0), .int32(1), .int32(Int32(blockSize)), .int32(Int32(heads)), .int32(Int32(kvHeads)),
                                           .int32(Int32(headDim)), .float(scale)]
            if attentionKernels == .decode {
                let splits = (positions.max()! + GPULlama.attentionSplit) / GPULlama.attentionSplit
                let partials = try scratch.zeros(rows * heads * splits * (headDim + 2) * 4), counters = try scratch.zeros(rows * kvHeads * 4)
                let out = try scratch.zeros(2 * q.count * elementBytes)
                let shared = GPULlama.decodeAttentionSharedBytes(heads: heads, kvHeads: kvHeads, headDim: headDim)
                try gpu.allowSharedMemory(functions["attention_decode"]!, bytes: shared)
                try gpu.launch(functions["attention_decode"]!, grid: (UInt32(rows), UInt32(kvHeads), UInt32(splits)), block: (256, 1, 1),
                               sharedBytes: UInt32(shared),
                               [.pointer(qPtr), .pointer(kPtr), .pointer(vPtr), .pointer(partials), .pointer(counters), .pointer(out), .pointer(pos),
                                .pointer(rowTable), .pointer(tables)] + shape + [.int32(Int32(splits)), .int64(splitInputs ? Int64(q.count) : 0)],
                               name: "attention_decode")
                return try downloadGemmOutput(out, q.count)
            }
            if attentionKernels == .flash {
                var tiles: [Int] = []
                for first in stride(from: 0, to: rows, by: GPULlama.flashTile) { tiles += [first, min(GPULlama.flashTile, rows - first)] }
                let out = try scratch.zeros(q.count * elementBytes)
                let (kernel, threads, shared, perBlock) = GPULlama.flashKernel(headDim: headDim, heads: heads, kvHeads: kvHeads, gemmBytes: elementBytes)
                if shared > 0 { try gpu.allowSharedMemory(functions[kernel]!, bytes: shared) }
                // The tensor-core kernel reads the cache's bf16 shadow.
                let tensorCores = kernel.hasPrefix("attention_mma")
                let (k, v) = tensorCores ? (try scratch.bytes(kc.map(GPULlama.bf16)), try scratch.bytes(vc.map(GPULlama.bf16))) : (kPtr, vPtr)
                try gpu.launch(functions[kernel]!, grid: (UInt32(tiles.count / 2), UInt32(heads / perBlock), 1), block: (threads, 1, 1),
                               sharedBytes: UInt32(shared),
                               [.pointer(qPtr), .pointer(k), .pointer(v), .pointer(out), .pointer(pos), .pointer(rowTable), .pointer(tables),
                                .pointer(try scratch.ints(tiles))] + shape, name: kernel)
                return try downloadGemmElements(out, q.count)
            }
            // Split partials, then their merge.
            let splits = (positions.max()! + GPULlama.attentionSplit) / GPULlama.attentionSplit
            let partials = try scratch.zeros(rows * heads * splits * (headDim + 2) * 4)
            let split = try scratch.zeros(q.count * elementBytes), tiled = try scratch.zeros(q.count * elementBytes)
            try gpu.launch(functions["attention_split"]!, grid: (UInt32(rows), UInt32(heads), UInt32(splits)), block: (256, 1, 1),
                           [.pointer(qPtr), .pointer(kPtr), .pointer(vPtr), .pointer(partials), .pointer(pos), .pointer(rowTable), .pointer(tables)]
                            + shape + [.int32(Int32(splits))], name: "attention_split")
            try gpu.launch(functions["attention_combine"]!, grid: (UInt32(rows), UInt32(heads), 1), block: (UInt32(min(128, headDim)), 1, 1),
                           [.pointer(partials), .pointer(split), .pointer(pos), .int32(Int32(heads)), .int32(Int32(headDim)), .int32(Int32(splits))],
                           name: "attention_combine")
            // Tiles of rows sharing each split's K/V.
            var tiles: [Int] = []
            for first in stride(from: 0, to: rows, by: GPULlama.attentionTile) { tiles += [first, min(GPULlama.attentionTile, rows - first)] }
            try gpu.allowSharedMemory(functions["attention_tiled"]!, bytes: 2 * GPULlama.attentionSplit * headDim * 4)
            try gpu.launch(functions["attention_tiled"]!, grid: (UInt32(tiles.count / 2), UInt32(heads), 1), block: (256, 1, 1),
                           sharedBytes: UInt32(2 * GPULlama.attentionSplit * headDim * 4),
                           [.pointer(qPtr), .pointer(kPtr), .pointer(vPtr), .pointer(tiled), .pointer(pos), .pointer(rowTable), .pointer(tables),
                            .pointer(try scratch.ints(tiles))] + shape, name: "attention_tiled")
            let a = try downloadGemmElements(split, q.count), b = try downloadGemmElements(tiled, q.count)
            if let i = a.indices.first(where: { a[$0].bitPattern != b[$0].bitPattern }) {
                throw GPUError.call("attention", code: 0, message: "split and tiled shapes differ at \(i): \(a[i]) vs \(b[i])")
            }
            return a
        }
    }
}
