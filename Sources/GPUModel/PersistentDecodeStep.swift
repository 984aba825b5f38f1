extension GPUKernels {
    /// The batch-1 persistent decode kernel (`decode_step_persistent`), from the parts in `persistentDecodeSource`, and
    /// its timing variants (NVRTC defines, off by default; `scripts/gpu-variants.sh` times them against the default).
    static let persistentDecodeStepSource = #"""
    // Timing variants (SWIFTWISE_KERNEL_DEFINES="-D..."; each keeps the fused kernels' bits, which gpu-check compares):
    // PD_NORM_STAGE=1: attention's past keys staged by the last sub-block while the first computes RMSNorm, not in the
    // barrier after QKV. PD_HEAD_WAIT=1: no grid barrier after QKV; a block counts its QKV units per K/V head and an
    // attention sub-block waits for its own head's units only.
    #ifndef PD_NORM_STAGE
    #define PD_NORM_STAGE 0
    #endif
    #ifndef PD_HEAD_WAIT
    #define PD_HEAD_WAIT 0
    #endif
    // Weights prefetched into L2 ahead of the rings, so that the memory streams while the latency-bound phases
    // (attention, the barriers, RMSNorm) run (sm_90's bulk prefetch: no registers, no shared memory, nothing to wait
    // for). Sessions 8-9 found this slower with 16-slot rings (docs/gpu.md); retimed here with 8. PD_L2_GU: gate|up
    // units a warp prefetches ahead (the first ones while attention runs); PD_L2_DOWN=1: the down projection's unit
    // with gate|up's last; PD_L2_QKV=1: the next layer's QKV unit when the down projection starts.
    #ifndef PD_L2_GU
    #define PD_L2_GU 0
    #endif
    #ifndef PD_L2_DOWN
    #define PD_L2_DOWN 0
    #endif
    #ifndef PD_L2_QKV
    #define PD_L2_QKV 0
    #endif
    __device__ __forceinline__ void pd_prefetch_l2(const void* p, int bytes) {
    #if __CUDA_ARCH__ >= 900
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" :: "l"(p), "r"(bytes) : "memory");
    #else
        for (int o = 0; o < bytes; o += 128) asm volatile("prefetch.global.L2 [%0];" :: "l"((const char*)p + o));
    #endif
    }
    // Lane 0 of each warp: prefetches the weight rows of this warp's units [r0, r1) of a GEMV (PDStream's units).
    template <int NOUT, class Out>
    __device__ __forceinline__ void pd_prefetch_units(const gemm_t* w, int inputs, int units, const Out& out, int r0, int r1) {
        if ((threadIdx.x & 31) != 0) return;
        int stride = gridDim.x * PD_SUBS * 8, first = blockIdx.x * PD_SUBS * 8 + (threadIdx.x >> 5);
        for (int r = r0; r < r1 && first + r * stride < units; r++) {
            #pragma unroll
            for (int m = 0; m < NOUT; m++) pd_prefetch_l2(w + (long)out.row(first + r * stride, m) * inputs, inputs * (int)sizeof(gemm_t));
        }
    }
    // gate|up: its unit r + PD_L2_GU, and once past its last, the down projection's unit.
    struct PDGateUpAhead {
        const gemm_t* wgu; const gemm_t* wdown; SwiGLUOut swiglu; PDResidualOut residual; int D, F, count;
        __device__ __forceinline__ void operator()(int r) const {
            if (PD_L2_GU > 0) pd_prefetch_units<2>(wgu, D, F, swiglu, r + PD_L2_GU, r + PD_L2_GU + 1);
            if (PD_L2_DOWN && r + max(PD_L2_GU, 1) == count) pd_prefetch_units<1>(wdown, F, D, residual, 0, 1);
        }
    };
    // down: the next layer's QKV unit (none after the last layer).
    struct PDDownAhead {
        const gemm_t* wqkv; RopeOut rope; int D, qkvUnits;
        __device__ __forceinline__ void operator()(int r) const {
            if (PD_L2_QKV && r == 0 && wqkv) pd_prefetch_units<2>(wqkv, D, qkvUnits, rope, 0, 1);
        }
    };

    // The K/V head whose attention needs QKV unit u (RopeOut's units: hd / 2 a head; the query heads, then K, then V).
    __device__ __forceinline__ int pd_unit_kv_head(int u, int hd, int heads, int kvHeads) {
        int h = u / (hd / 2);
        return h < heads ? h / (heads / kvHeads) : (h - heads) % kvHeads;
    }
    // PD_HEAD_WAIT's arrival: once the block's QKV units are stored, its first thread adds them to their heads' counts
    // (done[h]; a run of units of one head in one add), after a fence, as pd_grid_arrive does.
    __device__ void pd_heads_arrive(unsigned* done, int units, int hd, int heads, int kvHeads, unsigned long long* trace, int mark) {
        __syncthreads();
        if (threadIdx.x != 0) return;
        if (trace) trace[2 * mark] = pd_now();
        __threadfence();
        int stride = gridDim.x * PD_SUBS * 8, h = 0;
        unsigned n = 0;
        for (int wi = 0; wi < PD_SUBS * 8; wi++) {
            for (int u = blockIdx.x * PD_SUBS * 8 + wi; u < units; u += stride) {
                int k = pd_unit_kv_head(u, hd, heads, kvHeads);
                if (k != h && n) { atomicAdd(done + h, n); n = 0; }
                h = k;
                n++;
            }
        }
        if (n) atomicAdd(done + h, n);
    }
    // A sub-block waits until `done` (its head's count) reaches target, then its threads go on together.
    __device__ __forceinline__ void pd_head_wait(const GroupSync& sync, const unsigned* done, unsigned target) {
        if ((threadIdx.x & (DECODE_ATT_THREADS - 1)) == 0) {
            unsigned seen;
            do { asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(done) : "memory"); } while (seen < target);
        }
        sync();
    }

    // sync_words[0]: barrier arrivals, [1]: blocks done, [2 + h]: PD_HEAD_WAIT's QKV units done for K/V head h (the
    // last block done zeroes them all for the next step).
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
            // PD_NORM_STAGE: the last sub-block, idle while the first computes RMSNorm, stages every sub-block's keys
            // that precede the row's own (the barrier after QKV then has nothing of attention's to issue).
            if (PD_NORM_STAGE && !PD_DIAG_NO_ATTENTION && sub == PD_SUBS - 1) {
                #pragma unroll 1
                for (int s = 0; s < PD_SUBS; s++) {
                    int vb = blockIdx.x + s * gridDim.x;
                    if (vb >= kvHeads * max_splits) break;
                    DecodeSplitKV kv((float*)(pd_shared + xs_bytes) + s * att_floats, 0, vb % kvHeads, vb / kvHeads, row_table, tables, l, layers, bs, kvHeads, hd);
                    decode_attention_stage_async(kv, threadIdx.x & (DECODE_ATT_THREADS - 1), 0, decode_attention_past_keys(0, vb / kvHeads, pos), kc, vc);
                }
            }
            pd_stage_norm(x, w->attn_norm, eps, D, xs, red);
            pd_gemv(qkv, xs);
            // While the grid meets: the sub-block's first attention split stages its keys that precede the row's own
            // (in the cache since earlier steps), so that after the barrier only q and the new key are read; then the
            // o projection's first copies start, to fly through the attention phase (its ring is separate memory).
            PDStream<1, PDResidualOut> o(w->wo, QD, D, ks_o, residual, ring);
            int staged = 0;
            if (PD_HEAD_WAIT) pd_heads_arrive(sync_words + 2, qkvUnits, hd, heads, kvHeads, trace, ++mark);
            else pd_grid_arrive(sync_words, target, trace, ++mark);
            if (!PD_DIAG_NO_ATTENTION && vb0 < kvHeads * max_splits) {
                staged = decode_attention_past_keys(0, vb0 / kvHeads, pos);
                DecodeSplitKV kv(att, 0, vb0 % kvHeads, vb0 / kvHeads, row_table, tables, l, layers, bs, kvHeads, hd);
                if (!PD_NORM_STAGE) decode_attention_stage_async(kv, threadIdx.x & (DECODE_ATT_THREADS - 1), 0, staged, kc, vc);
            }
            o.prologue(PD_PRO_O);
            if (PD_L2_GU > 0) pd_prefetch_units<2>(w->wgu, D, F, swiglu, 0, PD_L2_GU);
            // The staged keys (older than the o projection's PD_PRO_O groups), before the barrier's __syncthreads: with
            // PD_NORM_STAGE another sub-block's threads copied them.
            cp_async_wait<PD_PRO_O>();
            if (!PD_HEAD_WAIT) pd_grid_wait(sync_words, target, trace, mark);
            else {
                if (PD_NORM_STAGE) __syncthreads();
                if (trace && threadIdx.x == 0) trace[2 * mark + 1] = pd_now();
            }
            // One attention block per SM first (block b's first sub-block takes block b, ...): SMs with two would take
            // longer while most sit idle.
            for (int vb = vb0; !PD_DIAG_NO_ATTENTION && vb < kvHeads * max_splits; vb += gridDim.x * PD_SUBS) {
                if (PD_HEAD_WAIT) pd_head_wait(sync, sync_words + 2 + vb % kvHeads, (l + 1) * (heads / kvHeads + 2) * (hd / 2));
                decode_attention_block<GroupSync, false>(sync, threadIdx.x & (DECODE_ATT_THREADS - 1), att, 0, vb % kvHeads, vb / kvHeads, q, kc, vc, partials,
                                       counters, attnB, pos, row_table, tables, l, layers, bs, heads, kvHeads, hd, scale, max_splits, 0L,
                                       vb == vb0 ? staged : 0);
            }
            pd_grid_arrive(sync_words, target, trace, ++mark);
            o.prologue();  // what PD_PRO_O left
            pd_grid_wait(sync_words, target, trace, mark);
            pd_stage(attnB, QD, xs);
            pd_gemv(o, xs);
            PDStream<2, SwiGLUOut> gateUp(w->wgu, D, F, ks_gu, swiglu, ring);
            pd_grid_sync_starting(gateUp, sync_words, target, trace, ++mark);
            pd_stage_norm(x, w->ffn_norm, eps, D, xs, red);
            pd_gemv(gateUp, xs, PDGateUpAhead{w->wgu, w->wdown, swiglu, residual, D, F, gateUp.count});
            PDStream<1, PDResidualOut> down(w->wdown, F, D, ks_down, residual, ring);
            pd_grid_sync_starting(down, sync_words, target, trace, ++mark);
            pd_stage(act, F, xs);
            pd_gemv(down, xs, PDDownAhead{PD_L2_QKV && l + 1 < layers ? lw[l + 1].wqkv : nullptr, rope, D, qkvUnits});
            if (l + 1 == layers) break;
            rope.layer = l + 1;
            rope.bias = lw[l + 1].bqkv;
            qkv = PDStream<2, RopeOut>(lw[l + 1].wqkv, D, qkvUnits, ks_qkv, rope, ring);
            pd_grid_sync_starting(qkv, sync_words, target, trace, ++mark);
        }
        pd_finish(sync_words, 2 + kvHeads, trace, layers);
    }

    """#
}
