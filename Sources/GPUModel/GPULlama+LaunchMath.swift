import Models

/// Which kernels the forward pass launches and with what: attention shapes, kernel choice, shared-memory sizes, the
/// fused GEMVs' limits (unit-tested without a GPU in GPUTests).
extension GPULlama {
    /// Shared memory a normalizing GEMV may use for its staged rows (opted in at load).
    static let fusedSharedLimit = 96 << 10

    /// Whether a step of `rows` rows runs the fused GEMV kernels (RMSNorm prologue; residual, SwiGLU or RoPE
    /// epilogue): the GEMV's row range, when the staged normalized rows fit in shared memory. They compute exactly
    /// what the separate kernels compute, so the choice never changes a result (`fusedDecode = false` to compare).
    func fusesDecode(rows: Int) -> Bool {
        fusedDecode && Self.fusedGEMVFits(rows: rows, config: config, gemmBytes: gemmBytes)
    }

    /// The fused GEMVs' limits: the GEMV's row count, the staged normalized rows within the shared memory opted in,
    /// 16-byte weight loads (every GEMV width a multiple of 8 elements).
    static func fusedGEMVFits(rows: Int, config c: ModelConfig, gemmBytes: Int) -> Bool {
        rows <= GPUGemm.gemvRows && rows * c.hiddenSize * gemmBytes <= fusedSharedLimit
            && c.hiddenSize % 8 == 0 && c.ffnSize % 8 == 0 && (c.heads * c.headDim) % 8 == 0
    }

    /// How a step's attention runs: split partials + merge (few rows), tiles sharing K/V loads with the same
    /// per-row arithmetic (batch-invariant mode), or flash-style tiles (prefill in the default mode).
    enum AttentionShape: Equatable { case split(Int), tiled, flash }

    /// Dynamic shared memory of attention_flash: Q tile, Kᵀ chunk (padded), V chunk, P per warp.
    static func flashSharedBytes(headDim hd: Int) -> Int { (flashTile * hd + (64 + 1) * hd + 64 * hd + 8 * (flashTile / 8) * 64) * 4 }

    /// Dynamic shared memory of attention_decode (the kernel's decode_shared_floats): K (padded) and V of one split,
    /// the query heads of one K/V head, their scores, max and sum.
    static func decodeAttentionSharedBytes(heads: Int, kvHeads: Int, headDim hd: Int) -> Int {
        let g = heads / kvHeads
        return (attentionSplit * (hd + 1) + attentionSplit * hd + g * hd + g * attentionSplit + 2 * g) * 4
    }

    /// The flash-style prefill attention kernel: on tensor cores (`attention_mma64`/`128`, 4 warps per query head, two
    /// query heads of a K/V head per block where the grouping allows) for bf16 with head dim 64 or 128, else on CUDA
    /// cores (`attention_flash`, 8 warps; fp32 mode and other head dims). Both take tiles of `flashTile` rows; the grid
    /// is tiles × heads / headsPerBlock.
    static func flashKernel(headDim: Int, heads: Int, kvHeads: Int, gemmBytes: Int)
        -> (name: String, threads: UInt32, sharedBytes: Int, headsPerBlock: Int) {
        guard gemmBytes == 2 && (headDim == 64 || headDim == 128) else {
            return ("attention_flash", 256, flashSharedBytes(headDim: headDim), 1)
        }
        return (heads / kvHeads) % 2 == 0 ? ("attention_mma\(headDim)_2", 256, 0, 2) : ("attention_mma\(headDim)", 128, 0, 1)
    }
}
