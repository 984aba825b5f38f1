/// How the forward pass launches its attention kernels: shapes, kernel choice and shared-memory sizes (unit-tested
/// without a GPU in GPUTests).
extension GPULlama {
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
