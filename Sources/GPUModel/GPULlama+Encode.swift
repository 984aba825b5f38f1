import CUDA

/// One forward pass queued on the stream: the per-layer sequence of kernels and GEMMs (fused GEMVs for decode steps,
/// cuBLAS and per-row kernels for larger ones) and the helpers that launch them.
extension GPULlama {
    /// Device addresses of one step's integer metadata (all inside `ints`).
    struct StepPointers {
        var tokens, positions, blocks, slots, tables, rowTable, selected, tiles: UInt64
        var tileCount: Int
    }

    /// Queues one forward pass on the stream: every kernel and GEMM, ending with the logits of `rows` rows.
    func encode(T: Int, rows: Int, attention shape: AttentionShape, _ p: StepPointers) throws {
        let c = config
        let D = c.hiddenSize, KV = c.kvDim, F = c.ffnSize, QD = c.heads * c.headDim
        let (pTokens, pPos, pBlock, pSlot, pSelected) = (p.tokens, p.positions, p.blocks, p.slots, p.selected)
        let fused = fusesDecode(rows: T)
        // Split inputs: each GEMM's bf16 input is written as two row blocks (high halves, then what their rounding
        // lost) and the two output blocks are summed by the next kernel: near-fp32 inputs at the cost of twice the
        // rows, where that costs nothing (few rows: the GEMM streams the weights either way).
        let split = splitsInputs(rows: T, attention: shape)
        let gemmRows = split ? 2 * T : T
        func lo(_ width: Int) -> KernelArgument { .int64(split ? Int64(T * width) : 0) }
        // cuBLAS adds the o and down projections to the residual stream itself (β = 1); the GEMV kernel (and the
        // split-input GEMMs) store them in `delta`, added by the next RMSNorm.
        let accumulates = !fused && !split && !gemms.usesGEMV(rows: T, inputs: QD) && !gemms.usesGEMV(rows: T, inputs: F)
        // Many rows: the gate|up GEMM writes bf16 (half the bytes written, and read again by SwiGLU).
        let bf16GateUp = !fused && !split && gemmBytes == 2 && bf16GateUpOutput && !gemms.usesGEMV(rows: T, inputs: D)
        let ropeDims: [KernelArgument] = [.int32(Int32(c.layers)), .int32(Int32(blockSize)), .int32(Int32(c.heads)),
                                          .int32(Int32(c.kvHeads)), .int32(Int32(c.headDim))]
        try launch("embed", grid: T, block: 256, [.pointer(embedding), .pointer(pTokens), .pointer(x), .int32(Int32(D))])
        if case .split(let splits) = shape, usesPersistentDecode(rows: T, logitRows: rows, attention: shape) {
            try persistentDecodeLayers(splits: splits, p)
            return try projectLogits(rows: rows, selected: pSelected)
        }
        for (l, w) in layers.enumerated() {
            if fused {  // RMSNorm, the QKV GEMV, bias, RoPE and the KV-cache write in one launch
                try fusedGEMV("gemv_norm_rope", units: (QD + 2 * KV) / 2, rows: T, matrixRows: QD + 2 * KV, inputs: D, normInputs: D,
                              [.pointer(x), .pointer(w.attnNorm), .float(c.rmsEps), .pointer(w.wqkv), .pointer(w.bqkv ?? 0), .pointer(q),
                               .pointer(kCache), .pointer(vCache), .pointer(pPos), .pointer(inverseFrequencies), .pointer(pBlock),
                               .pointer(pSlot), .int32(Int32(l))] + ropeDims + [.int32(Int32(T)), .int32(Int32(D)), .pointer(kShadow), .pointer(vShadow)])
            } else {
                if l == 0 || accumulates {
                    try launch("rmsnorm_bf16", grid: T, block: 256, [.pointer(x), .pointer(w.attnNorm), .pointer(xn), .int32(Int32(D)),
                                                                      .float(c.rmsEps), lo(D)])
                } else {  // the previous layer's FFN residual, added here
                    try launch("add_rmsnorm_bf16", grid: T, block: 256, [.pointer(x), .pointer(delta), .pointer(w.attnNorm), .pointer(xn),
                                                                          .int32(Int32(D)), .float(c.rmsEps), lo(D), lo(D)])
                }
                try gemm(xn, w.wqkv, qkv, rows: gemmRows, inputs: D, outputs: QD + 2 * KV)
                if let b = w.bqkv { try addBias(qkv, b, T, QD + 2 * KV) }  // the high block's rows only
                try launch("rope_split", grid: T, block: 128, [.pointer(qkv), .pointer(q), .pointer(kCache), .pointer(vCache), .pointer(pPos),
                                                                .pointer(inverseFrequencies), .pointer(pBlock), .pointer(pSlot), .int32(Int32(l))]
                           + ropeDims + [lo(QD + 2 * KV), .pointer(kShadow), .pointer(vShadow)])
            }
            try attention(T: T, layer: l, shape: shape, p, lo: lo(QD))
            if fused {  // o projection + residual, RMSNorm + gate|up + SwiGLU, down projection + residual
                try fusedGEMV("gemv_residual", units: D, rows: T, matrixRows: D, inputs: QD, normInputs: nil,
                              [.pointer(attnB), .pointer(w.wo), .pointer(x), .int32(Int32(T)), .int32(Int32(QD)), .int32(Int32(D))])
                try fusedGEMV("gemv_norm_swiglu", units: F, rows: T, matrixRows: 2 * F, inputs: D, normInputs: D,
                              [.pointer(x), .pointer(w.ffnNorm), .float(c.rmsEps), .pointer(w.wGateUp), .pointer(act), .int32(Int32(T)),
                               .int32(Int32(D)), .int32(Int32(F))])
                try fusedGEMV("gemv_residual", units: D, rows: T, matrixRows: D, inputs: F, normInputs: nil,
                              [.pointer(act), .pointer(w.wDown), .pointer(x), .int32(Int32(T)), .int32(Int32(F)), .int32(Int32(D))])
                continue
            }
            if accumulates {
                try gemm(attnB, w.wo, x, rows: T, inputs: QD, outputs: D, accumulate: true)
                try launch("rmsnorm_bf16", grid: T, block: 256, [.pointer(x), .pointer(w.ffnNorm), .pointer(xn), .int32(Int32(D)), .float(c.rmsEps), lo(D)])
            } else {
                try gemm(attnB, w.wo, delta, rows: gemmRows, inputs: QD, outputs: D)
                try launch("add_rmsnorm_bf16", grid: T, block: 256, [.pointer(x), .pointer(delta), .pointer(w.ffnNorm), .pointer(xn),
                                                                      .int32(Int32(D)), .float(c.rmsEps), lo(D), lo(D)])
            }
            try gemm(xn, w.wGateUp, gateUp, rows: gemmRows, inputs: D, outputs: 2 * F, bf16Output: bf16GateUp)
            let swiglu = bf16GateUp ? "swiglu_bf16in" : "swiglu_bf16"
            try timed(swiglu) {
                try gpu.launch(functions[swiglu]!, grid: (UInt32((F + Self.swigluColumnsPerBlock - 1) / Self.swigluColumnsPerBlock), UInt32(T), 1), block: (256, 1, 1),
                               [.pointer(gateUp), .pointer(act), .int32(Int32(F))] + (bf16GateUp ? [] : [lo(2 * F), lo(F)]), name: swiglu)
            }
            try gemm(act, w.wDown, accumulates ? x : delta, rows: gemmRows, inputs: F, outputs: D, accumulate: accumulates)
        }
        if !fused && !accumulates {  // the last layer's FFN residual
            try elementwise("residual_add", T * D, [.pointer(x), .pointer(delta), lo(D)])
        }
        try projectLogits(rows: rows, selected: pSelected)
    }

    /// The final RMSNorm of the `rows` selected rows of x and the vocabulary projection into `logits`.
    private func projectLogits(rows: Int, selected: UInt64) throws {
        let c = config
        let D = c.hiddenSize, V = c.vocabSize
        guard rows > 0 else { return }
        if fusesDecode(rows: rows) {  // one launch: RMSNorm prologue + GEMV
            try fusedGEMV("gemv_norm", units: V, rows: rows, matrixRows: V, inputs: D, normInputs: D,
                          [.pointer(x), .pointer(selected), .pointer(outputNorm), .float(c.rmsEps), .pointer(output), .pointer(logits),
                           .int32(Int32(rows)), .int32(Int32(D)), .int32(Int32(V))])
            return
        }
        try launch("gather_rows", grid: rows, block: 256, [.pointer(x), .pointer(selected), .pointer(normed), .int32(Int32(D))])
        try launch("rmsnorm_bf16", grid: rows, block: 256, [.pointer(normed), .pointer(outputNorm), .pointer(xn), .int32(Int32(D)), .float(c.rmsEps),
                                                             .int64(0)])
        try gemm(xn, output, logits, rows: rows, inputs: D, outputs: V)
    }

    /// Every layer of a one-row decode step in one launch (decode_step_persistent): one block per SM, launched as a
    /// cooperative kernel (the driver guarantees that all blocks are resident at once, which its grid barriers need).
    private func persistentDecodeLayers(splits: Int, _ p: StepPointers) throws {
        let c = config
        let D = c.hiddenSize, KV = c.kvDim, F = c.ffnSize, QD = c.heads * c.headDim
        let shared = Self.persistentDecodeShared(c, gemmBytes: gemmBytes)
        func split(_ inputs: Int, _ outputs: Int) -> KernelArgument { .int32(Int32(GPUGemm.split(inputs: inputs, outputs: outputs))) }
        let args: [KernelArgument] = [
            .pointer(layerTable), .pointer(x), .pointer(q), .pointer(kCache), .pointer(vCache), .pointer(kShadow), .pointer(vShadow),
            .pointer(attnB), .pointer(act), .pointer(partials), .pointer(splitCounters), .pointer(persistentSync), .pointer(p.positions),
            .pointer(p.blocks), .pointer(p.slots), .pointer(p.rowTable), .pointer(p.tables), .pointer(inverseFrequencies),
            .float(c.rmsEps), .float(1 / Float(c.headDim).squareRoot()), .int32(Int32(c.layers)), .int32(Int32(blockSize)),
            .int32(Int32(c.heads)), .int32(Int32(c.kvHeads)), .int32(Int32(c.headDim)), .int32(Int32(D)), .int32(Int32(F)),
            .int32(Int32(splits)), .int32(Int32(shared.inputBytes)), .int32(Int32(shared.attentionFloats)),
            split(D, QD + 2 * KV), split(QD, D), split(D, 2 * F), split(F, D), .pointer(persistentTrace)]
        try timed("decode_step_persistent") {
            try gpu.launch(functions["decode_step_persistent"]!, grid: (UInt32(gpu.multiprocessors), 1, 1),
                           block: (UInt32(256 * Self.persistentSubBlocks), 1, 1), sharedBytes: UInt32(shared.total), args,
                           name: "decode_step_persistent", cooperative: true)
        }
    }

    /// A fused GEMV: one warp per unit (an output, or a pair of outputs for SwiGLU and RoPE), 8 warps per block;
    /// `normInputs` rows of that width are staged in dynamic shared memory.
    /// `matrixRows` × `inputs` is the weight matrix's shape, which decides the warps per output (`GPUGemm.split`).
    private func fusedGEMV(_ name: String, units: Int, rows: Int, matrixRows: Int, inputs: Int, normInputs: Int?,
                           _ args: [KernelArgument]) throws {
        let split = GPUGemm.split(inputs: inputs, outputs: matrixRows)
        // A one-row step has its own instantiation: one accumulator per output, fewer registers, more warps.
        let name = rows == 1 ? name + GPUKernels.singleRowSuffix : name
        try timed("\(name) \(rows) rows, \(units) units") {
            try gpu.launch(functions[name]!, grid: (UInt32(GPUGemm.blocks(units: units, split: split)), 1, 1), block: (256, 1, 1),
                           sharedBytes: UInt32((normInputs ?? 0) * rows * gemmBytes), args + [.int32(Int32(split))], name: name)
        }
    }

    /// `lo`: where attention_decode writes the low halves of its outputs (split inputs), else 0.
    private func attention(T: Int, layer l: Int, shape: AttentionShape, _ p: StepPointers, lo: KernelArgument) throws {
        let c = config
        let common: [KernelArgument] = [.pointer(p.positions), .pointer(p.rowTable), .pointer(p.tables)]
        let dims: [KernelArgument] = [.int32(Int32(l)), .int32(Int32(c.layers)), .int32(Int32(blockSize)), .int32(Int32(c.heads)),
                                       .int32(Int32(c.kvHeads)), .int32(Int32(c.headDim)), .float(1 / Float(c.headDim).squareRoot())]
        switch shape {
        case .split(let splits) where !batchInvariant:
            let shared = Self.decodeAttentionSharedBytes(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim)
            try timed("attention_decode") {
                try gpu.launch(functions["attention_decode"]!, grid: (UInt32(T), UInt32(c.kvHeads), UInt32(splits)), block: (256, 1, 1),
                               sharedBytes: UInt32(shared),
                               [.pointer(q), .pointer(kCache), .pointer(vCache), .pointer(partials), .pointer(splitCounters), .pointer(attnB)]
                                + common + dims + [.int32(Int32(splits)), lo], name: "attention_decode")
            }
        case .split(let splits):
            try timed("attention_split") {
                try gpu.launch(functions["attention_split"]!, grid: (UInt32(T), UInt32(c.heads), UInt32(splits)), block: (256, 1, 1),
                               [.pointer(q), .pointer(kCache), .pointer(vCache), .pointer(partials)] + common + dims + [.int32(Int32(splits))],
                               name: "attention_split")
            }
            try timed("attention_combine") {
                try gpu.launch(functions["attention_combine"]!, grid: (UInt32(T), UInt32(c.heads), 1), block: (UInt32(min(128, c.headDim)), 1, 1),
                               [.pointer(partials), .pointer(attnB), .pointer(p.positions), .int32(Int32(c.heads)), .int32(Int32(c.headDim)),
                                .int32(Int32(splits))], name: "attention_combine")
            }
        case .tiled, .flash:
            let flash = Self.flashKernel(headDim: c.headDim, heads: c.heads, kvHeads: c.kvHeads, gemmBytes: gemmBytes)
            let (name, threads, shared, perBlock) = shape == .flash ? flash : ("attention_tiled", 256, 2 * Self.attentionSplit * c.headDim * 4, 1)
            let (k, v) = name.hasPrefix("attention_mma") ? (kShadow, vShadow) : (kCache, vCache)
            try timed(name) {
                try gpu.launch(functions[name]!, grid: (UInt32(p.tileCount), UInt32(c.heads / perBlock), 1), block: (threads, 1, 1),
                               sharedBytes: UInt32(shared),
                               [.pointer(q), .pointer(k), .pointer(v), .pointer(attnB)] + common + [.pointer(p.tiles)] + dims,
                               name: name)
            }
        }
    }

    private func launch(_ name: String, grid: Int, block: Int, _ args: [KernelArgument]) throws {
        try timed(name) { try gpu.launch(functions[name]!, grid: (UInt32(grid), 1, 1), block: (UInt32(block), 1, 1), args, name: name) }
    }

    private func elementwise(_ name: String, _ n: Int, _ args: [KernelArgument]) throws {
        try timed(name) {
            try gpu.launch(functions[name]!, grid: (UInt32((n + 255) / 256), 1, 1), block: (256, 1, 1), args + [.int64(Int64(n))], name: name)
        }
    }

    private func addBias(_ y: UInt64, _ b: UInt64, _ rows: Int, _ n: Int) throws {
        try timed("add_bias") {
            try gpu.launch(functions["add_bias"]!, grid: (UInt32((rows * n + 255) / 256), 1, 1), block: (256, 1, 1),
                           [.pointer(y), .pointer(b), .int32(Int32(n)), .int64(Int64(rows * n))], name: "add_bias")
        }
    }

    /// y[rows × outputs] (fp32) = x[rows × inputs] (bf16) · W[outputs × inputs]ᵀ (bf16), row-major throughout:
    /// in cuBLAS's column-major terms C[outputs × rows] = Wᵀ-op(W) · X.
    private func gemm(_ x: UInt64, _ w: UInt64, _ y: UInt64, rows: Int, inputs: Int, outputs: Int, accumulate: Bool = false,
                      bf16Output: Bool = false) throws {
        let kind = gemms.usesGEMV(rows: rows, inputs: inputs) ? "gemv" : accumulate ? "gemm+residual" : bf16Output ? "gemm→bf16" : "gemm"
        try timed("\(kind) \(rows)×\(inputs)·\(inputs)×\(outputs)") {
            try gemms.run(x, w, y, rows: rows, inputs: inputs, outputs: outputs, accumulate: accumulate, bf16Output: bf16Output)
        }
    }
}
