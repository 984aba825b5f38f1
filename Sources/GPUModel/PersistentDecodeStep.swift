extension GPUKernels {
    /// The batch-1 persistent decode kernel (`decode_step_persistent`), from the parts in `persistentDecodeSource`.
    static let persistentDecodeStepSource = #"""
    // sync_words[0]: barrier arrivals, [1]: blocks done (the last block done zeroes both for the next step).
    extern "C" __global__ void __launch_bounds__(PD_THREADS, 1)
    decode_step_persistent(const LayerWeights* lw, float* x, float* q, float* kc, float* vc, bf16* k16, bf16* v16, gemm_t* attnB,
                           gemm_t* act, float* partials, int* counters, unsigned* sync_words, const int* pos, const int* row_block,
                           const int* row_slot, const int* row_table, const int* tables, const float* inv_freq, float eps, float scale,
                           int layers, int bs, int heads, int kvHeads, int hd, int D, int F, int max_splits, int xs_bytes,
                           int att_floats, int ks_qkv, int ks_o, int ks_gu, int ks_down, unsigned long long* trace) {
        extern __shared__ __align__(16) unsigned char pd_shared[];
        __shared__ float red[16];
        pdl_wait();
        pdl_trigger();
        gemm_t* xs = (gemm_t*)pd_shared;
        int sub = threadIdx.x >> 8;
        // After xs: the attention blocks' memory, then the warps' rings.
        float* att = (float*)(pd_shared + xs_bytes) + sub * att_floats;
        uint4* ring = (uint4*)(pd_shared + xs_bytes + PD_SUBS * att_floats * 4) + (threadIdx.x >> 5) * PD_STAGES * 32;
        GroupSync sync = {sub + 1};
        int QD = heads * hd, qkvUnits = (QD + 2 * kvHeads * hd) / 2;
        unsigned target = 0;
        int mark = 0;
        if (trace) trace += (long)blockIdx.x * (5 * layers + 1) * 2;
        if (trace && threadIdx.x == 0) trace[1] = pd_now();
        PDResidualOut residual = {x};
        SwiGLUOut swiglu = {act, F};
        RopeOut rope = {q, kc, vc, k16, v16, lw[0].bqkv, pos, inv_freq, row_block, row_slot, 0, layers, bs, heads, kvHeads, hd};
        PDStream<2, RopeOut> qkv(lw[0].wqkv, D, qkvUnits, ks_qkv, rope, ring);
        qkv.prologue();
        int vb0 = blockIdx.x + sub * gridDim.x;
        for (int l = 0; l < layers; l++) {
            const LayerWeights* w = lw + l;
            pd_stage_norm(x, w->attn_norm, eps, D, xs, red);
            pd_gemv(qkv, xs);
            // While the grid meets: the sub-block's first attention split stages its keys that precede the row's own
            // (in the cache since earlier steps), so that after the barrier only q and the new key are read; then the
            // o projection's first copies start, to fly through the attention phase (its ring is separate memory).
            PDStream<1, PDResidualOut> o(w->wo, QD, D, ks_o, residual, ring);
            int staged = 0;
            pd_grid_arrive(sync_words, target, trace, ++mark);
            if (!PD_DIAG_NO_ATTENTION && vb0 < kvHeads * max_splits) {
                staged = decode_attention_past_keys(0, vb0 / kvHeads, pos);
                DecodeSplitKV kv(att, 0, vb0 % kvHeads, vb0 / kvHeads, row_table, tables, l, layers, bs, kvHeads, hd);
                decode_attention_stage_async(kv, threadIdx.x & (DECODE_ATT_THREADS - 1), 0, staged, kc, vc);
            }
            o.prologue();
            // The staged keys (older than the o projection's groups), before the barrier's __syncthreads.
            cp_async_wait<PD_PRIME>();
            pd_grid_wait(sync_words, target, trace, mark);
            // One attention block per SM first (block b's first sub-block takes block b, ...): SMs with two would take
            // longer while most sit idle.
            for (int vb = vb0; !PD_DIAG_NO_ATTENTION && vb < kvHeads * max_splits; vb += gridDim.x * PD_SUBS) {
                decode_attention_block<GroupSync, false, !PD_MERGE_ALL>(sync, threadIdx.x & (DECODE_ATT_THREADS - 1), att, 0, vb % kvHeads, vb / kvHeads, q, kc, vc, partials,
                                       counters, attnB, pos, row_table, tables, l, layers, bs, heads, kvHeads, hd, scale, max_splits, 0L,
                                       vb == vb0 ? staged : 0);
            }
            pd_grid_arrive(sync_words, target, trace, ++mark);
            pd_grid_wait(sync_words, target, trace, mark);
            if (PD_MERGE_ALL) pd_merge_stage(partials, pos, heads, hd, max_splits, xs, (float*)(pd_shared + xs_bytes));
            else pd_stage(attnB, QD, xs);
            pd_gemv(o, xs);
            PDStream<2, SwiGLUOut> gateUp(w->wgu, D, F, ks_gu, swiglu, ring);
            pd_grid_sync_starting(gateUp, sync_words, target, trace, ++mark);
            pd_stage_norm(x, w->ffn_norm, eps, D, xs, red);
            pd_gemv(gateUp, xs);
            PDStream<1, PDResidualOut> down(w->wdown, F, D, ks_down, residual, ring);
            pd_grid_sync_starting(down, sync_words, target, trace, ++mark);
            pd_stage(act, F, xs);
            pd_gemv(down, xs);
            if (l + 1 == layers) break;
            rope.layer = l + 1;
            rope.bias = lw[l + 1].bqkv;
            qkv = PDStream<2, RopeOut>(lw[l + 1].wqkv, D, qkvUnits, ks_qkv, rope, ring);
            pd_grid_sync_starting(qkv, sync_words, target, trace, ++mark);
        }
        pd_finish(sync_words, trace, layers);
    }

    """#
}
