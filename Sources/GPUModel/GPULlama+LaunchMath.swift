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

    /// Whether a step's GEMMs take their bf16 inputs as pairs (high halves, then the low halves as many rows more;
    /// `encode`): cuBLAS steps of up to `splitAttentionRows` rows, where the GEMM streams the weights either way and
    /// twice the rows cost next to nothing, with attention_decode (the attention kernel that writes pairs); bf16 mode.
    func splitsInputs(rows: Int, attention: AttentionShape) -> Bool {
        guard case .split = attention, splitInputs, !batchInvariant, !fusesDecode(rows: rows) else { return false }
        return Self.splitInputsFit(rows: rows, config: config, gemmBytes: gemmBytes, maxTokens: maxTokens)
    }

    /// The row range of split inputs: bf16 mode, every GEMM of the step on cuBLAS (the GEMV kernel would stream the
    /// weights once more per 8 rows), at most `splitAttentionRows` rows, twice the rows within the scratch buffers.
    static func splitInputsFit(rows: Int, config c: ModelConfig, gemmBytes: Int, maxTokens: Int) -> Bool {
        gemmBytes == 2 && rows <= splitAttentionRows && 2 * rows <= maxTokens
            && ![c.hiddenSize, c.heads * c.headDim, c.ffnSize].contains { GPUGemm.usesGEMV(rows: rows, inputs: $0, batchInvariant: false) }
    }

    /// How a step's attention runs: split partials + merge (few rows), tiles sharing K/V loads with the same
    /// per-row arithmetic (batch-invariant mode), or flash-style tiles (prefill in the default mode).
    enum AttentionShape: Equatable { case split(Int), tiled, flash }

    /// Dynamic shared memory of attention_flash: Q tile, Kᵀ chunk (padded), V chunk, P per warp.
    static func flashSharedBytes(headDim hd: Int) -> Int { (flashTile * hd + (64 + 1) * hd + 64 * hd + 8 * (flashTile / 8) * 64) * 4 }

    /// Dynamic shared memory of one decode-attention block (decode_attention_block): K (rows padded by
    /// `attentionKeyPad` floats) and V of one split, the query heads of one K/V head, their scores, max and sum, and
    /// the word saying whether the block merges.
    static func decodeAttentionSharedBytes(heads: Int, kvHeads: Int, headDim hd: Int) -> Int {
        let g = heads / kvHeads
        return (attentionSplit * (hd + attentionKeyPad) + attentionSplit * hd + g * hd + g * attentionSplit + 2 * g + 1) * 4
    }

    /// Sub-blocks of 256 threads per block of decode_step_persistent (the kernel's PD_SUBS; one block per SM, so at
    /// most 128 registers a thread) and 16-byte ring slots per lane of its weight streams (PD_STAGES).
    static let persistentSubBlocks = 2
    static let persistentStages = experimentDefine("PD_STAGES") ?? 8

    /// The value of `-DNAME=value` in SWIFTWISE_KERNEL_DEFINES (the host's side of a kernel experiment).
    static func experimentDefine(_ name: String) -> Int? {
        experimentDefines.lazy.compactMap { $0.hasPrefix("-D\(name)=") ? Int($0.dropFirst(name.count + 3)) : nil }.first
    }

    /// Dynamic shared memory of decode_step_persistent: one GEMV input row (the widest of hidden, attention and FFN
    /// width), one decode-attention block's memory per sub-block (each rounded to 16 bytes: float4 stores), then
    /// every warp's ring of 16-byte chunks (separate from the attention memory: the o projection's copies fly during
    /// attention). 150 KiB for Llama-3.2-1B's shape.
    static func persistentDecodeShared(_ c: ModelConfig, gemmBytes: Int) -> (inputBytes: Int, attentionFloats: Int, total: Int) {
        let input = (max(c.hiddenSize, c.heads * c.headDim, c.ffnSize) * gemmBytes + 15) / 16 * 16
        let attention = (decodeAttentionSharedBytes(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim) / 4 + 3) / 4 * 4
        let rings = persistentSubBlocks * 8 * persistentStages * 32 * 16
        return (input, attention, input + persistentSubBlocks * attention * 4 + rings)
    }

    /// Whether one-row decode steps run as decode_step_persistent: switched on, where the fused GEMVs and
    /// attention_decode would run (default mode), its shared memory within the device's limit, cooperative launches
    /// available, and no programmatic dependent launch (the opt-in experiment keeps the kernels it was measured with).
    public var persistentDecodeApplies: Bool {
        persistentDecode && persistentDecodeAvailable && !batchInvariant && !gpu.dependentLaunch && fusesDecode(rows: 1)
    }

    /// Whether one-row decode steps run as decode_step_persistent, and if not, why (gpu-check prints it).
    public var persistentDecodeUse: String {
        if persistentDecodeApplies { return "used" }
        if batchInvariant { return "not used in batch-invariant mode" }
        if !persistentDecode { return "switched off (SWIFTWISE_PERSISTENT_DECODE=0)" }
        if !fusesDecode(rows: 1) { return "not used without the fused decode kernels" }
        if gpu.dependentLaunch { return "not used with programmatic dependent launch" }
        let bytes = Self.persistentDecodeShared(config, gemmBytes: gemmBytes).total
        return "not available: \(bytes >> 10) KiB of shared memory a block exceeds the device's limit, or no cooperative launch"
    }

    /// Whether a step runs as decode_step_persistent: one row with its logits, decoded with split attention.
    func usesPersistentDecode(rows T: Int, logitRows: Int, attention: AttentionShape) -> Bool {
        guard case .split = attention else { return false }
        return T == 1 && logitRows == 1 && persistentDecodeApplies
    }

    /// Device bytes of the forward pass's scratch buffers, by buffer: steps of up to `maxTokens` rows (split inputs
    /// use twice the rows of steps of at most half that), `maxLogitRows` rows of logits. `init` allocates these sizes;
    /// `scratchBytes` adds them up for `serve`'s KV-cache sizing.
    struct ScratchSizes {
        var x, xn, qkv, q, attnB, gateUp, act, delta, normed, logits: Int
        /// Step metadata in ints: 10 a row, one a block-table entry (at most 4 per block), 16 more.
        var ints: Int
        var partials: Int
        var total: Int { x + xn + qkv + q + attnB + gateUp + act + delta + normed + logits + 4 * ints + partials }
    }

    static func scratchSizes(_ c: ModelConfig, maxTokens T: Int, maxLogitRows: Int, numBlocks: Int, gemmBytes eb: Int) -> ScratchSizes {
        let d = c.hiddenSize, kv = c.kvDim, f = c.ffnSize, qd = c.heads * c.headDim
        return ScratchSizes(x: T * d * 4, xn: T * max(d, qd) * eb, qkv: T * (qd + 2 * kv) * 4, q: T * qd * 4, attnB: T * qd * eb,
                            gateUp: T * 2 * f * 4, act: T * f * eb, delta: T * d * 4, normed: maxLogitRows * d * 4,
                            logits: maxLogitRows * c.vocabSize * 4, ints: 10 * T + numBlocks * 4 + 16, partials: partialBytes)
    }

    /// The scratch buffers' device bytes (without the block-table part of the metadata: 16 bytes a KV block).
    public static func scratchBytes(_ c: ModelConfig, maxTokens: Int, maxLogitRows: Int, gemmBytes: Int = 2) -> Int {
        scratchSizes(c, maxTokens: maxTokens, maxLogitRows: maxLogitRows, numBlocks: 0, gemmBytes: gemmBytes).total
    }

    /// Columns of a row per swiglu block: 256 threads of 8 (16-byte loads and stores).
    static let swigluColumnsPerBlock = 256 * 8

    /// Dynamic shared memory of attention_mma: three stages of K and V chunks of 64 keys (rows padded by 8 bf16).
    static func mmaAttentionSharedBytes(headDim hd: Int) -> Int { 3 * 2 * 64 * (hd + 8) * 2 }

    /// Whether prefill attention can run on tensor cores (bf16 mode, head dim 64 or 128).
    static func prefillUsesTensorCores(headDim: Int, gemmBytes: Int) -> Bool { gemmBytes == 2 && (headDim == 64 || headDim == 128) }

    /// Whether the KV cache has a bf16 shadow: where the tensor-core prefill attention runs (not in batch-invariant
    /// mode, whose attention reads the fp32 cache), which reads K and V from it.
    static func hasKVShadow(headDim: Int, gemmBytes: Int, batchInvariant: Bool) -> Bool {
        !batchInvariant && prefillUsesTensorCores(headDim: headDim, gemmBytes: gemmBytes)
    }

    /// Device bytes of one token's KV cache: fp32 K and V for every layer (the layout KV transfer moves), and their bf16
    /// shadow where there is one.
    public static func cacheBytesPerToken(_ c: ModelConfig, gemmBytes: Int = 2, batchInvariant: Bool = GPUGemm.batchInvariantMode) -> Int {
        2 * c.layers * c.kvDim * (4 + (hasKVShadow(headDim: c.headDim, gemmBytes: gemmBytes, batchInvariant: batchInvariant) ? 2 : 0))
    }

    /// The flash-style prefill attention kernel: on tensor cores (`attention_mma64`/`128`, 4 warps per query head, two
    /// query heads of a K/V head per block where the grouping allows) for bf16 with head dim 64 or 128, else on CUDA
    /// cores (`attention_flash`, 8 warps; fp32 mode and other head dims). Both take tiles of `flashTile` rows; the grid
    /// is tiles × heads / headsPerBlock.
    static func flashKernel(headDim: Int, heads: Int, kvHeads: Int, gemmBytes: Int)
        -> (name: String, threads: UInt32, sharedBytes: Int, headsPerBlock: Int) {
        guard prefillUsesTensorCores(headDim: headDim, gemmBytes: gemmBytes) else {
            return ("attention_flash", 256, flashSharedBytes(headDim: headDim), 1)
        }
        let shared = mmaAttentionSharedBytes(headDim: headDim)
        return (heads / kvHeads) % 2 == 0 ? ("attention_mma\(headDim)_2", 256, shared, 2) : ("attention_mma\(headDim)", 128, shared, 1)
    }
}
