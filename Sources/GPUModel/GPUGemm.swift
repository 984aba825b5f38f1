import CUDA
import Foundation

/// The GEMMs of the GPU path, y[rows × outputs] (fp32) = x[rows × inputs] · Wᵀ with x and W in the GEMM element type
/// (bf16, or fp32 in the check mode): the GEMV kernel for a few rows (cuBLAS's kernels leave most of the bandwidth
/// unused there) and, in batch-invariant mode, for every row count; cuBLAS otherwise.
public struct GPUGemm {
    let gpu: GPUContext
    let functions: [String: OpaquePointer]
    let elementBytes: Int
    /// `SWIFTWISE_BATCH_INVARIANT=1` (as vLLM's `VLLM_BATCH_INVARIANT`): every GEMM runs as the GEMV kernel, so a
    /// row's logits never depend on how many rows share its step (prefill and decode nodes then agree with a
    /// colocated one token for token), at the cost of prefill speed. The other kernels are batch invariant anyway.
    let batchInvariant = Self.batchInvariantMode
    public static let batchInvariantMode = ProcessInfo.processInfo.environment["SWIFTWISE_BATCH_INVARIANT"] == "1"
    /// Rows per GEMV block (the kernel's GEMV_ROWS).
    static let gemvRows = 8

    /// Warps per output of the GEMV kernels for a weight matrix of `outputs` × `inputs`: its shape alone decides, so
    /// an output's arithmetic is the same in every GEMV kernel (fused or not) and at every row count. Wide inputs and
    /// few outputs get more warps per output (the small matrices of a decode step otherwise fill a quarter of the
    /// warp slots); matrices of 16k rows and more have warps enough (splitting cost them time on the H100).
    public static func split(inputs: Int, outputs: Int) -> Int {
        outputs >= 16384 ? 1 : inputs >= 8192 ? 8 : inputs >= 4096 ? 4 : inputs >= 2048 ? 2 : 1
    }

    /// Blocks of 8 warps for `units` outputs (or output pairs) with `split` warps each.
    public static func blocks(units: Int, split: Int) -> Int { (units * split + 7) / 8 }

    func usesGEMV(rows: Int, inputs: Int) -> Bool { Self.usesGEMV(rows: rows, inputs: inputs, batchInvariant: batchInvariant) }

    static func usesGEMV(rows: Int, inputs: Int, batchInvariant: Bool) -> Bool {
        (rows <= gemvRows || batchInvariant) && inputs % 8 == 0
    }

    /// y = x·Wᵀ, or y += x·Wᵀ with `accumulate` (cuBLAS only: β = 1 adds the residual in the GEMM's epilogue,
    /// saving a pass over the activations).
    /// `bf16Output` (cuBLAS only): y in bf16, rounded from the fp32 accumulators.
    func run(_ x: UInt64, _ w: UInt64, _ y: UInt64, rows: Int, inputs: Int, outputs: Int, accumulate: Bool = false, bf16Output: Bool = false) throws {
        if usesGEMV(rows: rows, inputs: inputs) {
            precondition(!accumulate && !bf16Output, "the GEMV kernels store fp32; accumulate and bf16 outputs are for cuBLAS")
            let split = Self.split(inputs: inputs, outputs: outputs)
            // `split` warps per output, 8 per block; `gemv` keeps more of W in flight, `gemv_rows` uses fewer registers
            // (same arithmetic).
            try gpu.launch(functions[rows <= 2 ? "gemv" : "gemv_rows"]!,
                           grid: (UInt32(Self.blocks(units: outputs, split: split)), UInt32((rows + Self.gemvRows - 1) / Self.gemvRows), 1), block: (256, 1, 1),
                           [.pointer(x), .pointer(w), .pointer(y), .int32(Int32(rows)), .int32(Int32(inputs)), .int32(Int32(outputs)),
                            .int32(Int32(split))], name: "gemv")
            return
        }
        try Self.cublas(gpu, x, w, y, rows: rows, inputs: inputs, outputs: outputs, elementBytes: elementBytes, accumulate: accumulate,
                        bf16Output: bf16Output)
    }

    /// The cuBLAS GEMM (fp32 accumulation and output).
    public static func cublas(_ gpu: GPUContext, _ x: UInt64, _ w: UInt64, _ y: UInt64, rows: Int, inputs: Int, outputs: Int,
                              elementBytes: Int, accumulate: Bool = false, bf16Output: Bool = false) throws {
        // Row-major throughout: in cuBLAS's column-major terms C[outputs × rows] = op(W)ᵀ · X.
        var alpha: Float = 1, beta: Float = accumulate ? 1 : 0
        let type = elementBytes == 4 ? CuBLAS.r32F : CuBLAS.r16BF
        let status = gpu.blas.gemmEx(gpu.blas.handle, CuBLAS.opT, CuBLAS.opN, Int32(outputs), Int32(rows), Int32(inputs), &alpha,
                                     UnsafeRawPointer(bitPattern: UInt(w)), type, Int32(inputs),
                                     UnsafeRawPointer(bitPattern: UInt(x)), type, Int32(inputs), &beta,
                                     UnsafeMutableRawPointer(bitPattern: UInt(y)), bf16Output ? CuBLAS.r16BF : CuBLAS.r32F, Int32(outputs),
                                     CuBLAS.compute32F, -1)
        guard status == 0 else { throw GPUError.call("cublasGemmEx", code: status, message: "\(rows)×\(inputs)·\(inputs)×\(outputs)") }
    }
}
