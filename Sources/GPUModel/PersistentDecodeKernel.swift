extension GPUKernels {
    /// Batch-1 decode as one persistent kernel for all layers: its parts (the kernel is `persistentDecodeStepSource`).
    /// Uses `unpack` and the output forms of `gemvSource` and `decode_attention_block` of `decodeAttentionSource`.
    static let persistentDecodeSource = #"""
    // One decode step of one row through every layer in one launch (batch-1 decode): one block of PD_SUBS × 256
    // threads per SM, all resident at once. Between phases (QKV, attention, o, gate|up, down) the grid meets at a
    // barrier (a counter in global memory) instead of a kernel boundary, so a kernel's launch, ramp-up and last wave
    // are paid once a step instead of five times a layer. The GEMVs stream their weights through per-warp cp.async
    // rings in shared memory (PDStream), the next GEMV's first chunks copied while the grid meets (and the o
    // projection's through the whole attention phase); attention runs attention_decode's blocks, one per sub-block
    // (a named barrier). Every output is computed with exactly the separate kernels' arithmetic, so the logits equal
    // the fused kernels' bit for bit (gpu-check compares them). Activations written in the step (x, q, K/V, attention
    // and SwiGLU outputs) are read around L1 (__ldcg), which is not coherent across SMs.
    // Dynamic shared memory: GPULlama.persistentDecodeShared.
    #define PD_SUBS 2
    #define PD_THREADS (PD_SUBS * DECODE_ATT_THREADS)
    // Ring slots a warp: 8 (session 12, timed against 4-21 on an H200: more copies in flight only queue, and lengthen
    // the latency-bound phases and the barriers; 16 was 7% slower, 21 17%).
    #ifndef PD_STAGES
    #define PD_STAGES 8
    #endif
    // PD_PRIME (timing variant): chunks a warp copies ahead of a GEMV's first use (its prologue, across the barrier before
    // it), PD_LEAD: chunks ahead in the steady state (PD_LEAD <= PD_PRIME < PD_STAGES). By default both PD_STAGES - 1.
    // A deeper prologue than lead keeps more of the next weights in flight while the grid meets without keeping the
    // streaming phases' queues deeper: the first PD_PRIME - PD_LEAD uses issue nothing (an empty commit group keeps the
    // count of groups one a use), then each use issues the chunk PD_LEAD ahead.
    #ifndef PD_PRIME
    #define PD_PRIME (PD_STAGES - 1)
    #endif
    #ifndef PD_LEAD
    #define PD_LEAD PD_PRIME
    #endif
    static_assert(0 < PD_LEAD && PD_LEAD <= PD_PRIME && PD_PRIME < PD_STAGES, "ring depths: 0 < PD_LEAD <= PD_PRIME < PD_STAGES");
    // PD_SPREAD=1 (timing variant): a GEMV's units spread warp-major (unit w · blocks + b to warp w of block b), so that
    // every SM gets a share of a GEMV with fewer units than the grid has warps (QKV: 1536 units for 2112 warps leaves 36
    // blocks without one) and of gate|up's four-or-three units a warp, instead of whole blocks taking the first units.
    #ifndef PD_SPREAD
    #define PD_SPREAD 0
    #endif
    // PD_ACQREL_ARRIVE=1 (timing variant): a block's arrival at a grid barrier is fence.acq_rel.gpu and a relaxed
    // reduction instead of __threadfence (fence.sc.gpu, which also orders against every other sequentially consistent
    // fence: more than a release needs) and an atomic add whose result nobody reads.
    #ifndef PD_ACQREL_ARRIVE
    #define PD_ACQREL_ARRIVE 0
    #endif
    // PD_MERGE_ALL=1 (timing variant): attention's blocks write their split partials and go straight to the grid
    // barrier; after it every block merges all heads' partials into its GEMM inputs itself (pd_merge_stage), in place
    // of the last block of each K/V head merging them behind a counter (a fence, an atomic and a load of the partials
    // on the critical path) and every block then loading the merged output.
    #ifndef PD_MERGE_ALL
    #define PD_MERGE_ALL 0
    #endif
    // Diagnostics for timing only (their logits are wrong): PD_DIAG_NO_WAIT=1 never waits at a grid barrier (the
    // weights' streaming alone), PD_DIAG_NO_ATTENTION=1 skips attention.
    #ifndef PD_DIAG_NO_WAIT
    #define PD_DIAG_NO_WAIT 0
    #endif
    #ifndef PD_DIAG_NO_ATTENTION
    #define PD_DIAG_NO_ATTENTION 0
    #endif

    // A layer's device pointers, as GPULlama uploads them (8 words a layer).
    struct LayerWeights {
        const gemm_t* wqkv; const gemm_t* wo; const gemm_t* wgu; const gemm_t* wdown;
        const float* bqkv; const float* attn_norm; const float* ffn_norm; const void* unused;
    };

    // x[u] += s, reading x around L1 (ResidualOut's add).
    struct PDResidualOut {
        float* x;
        __device__ int row(int u, int) const { return u; }
        __device__ void store(int u, int, const float* s) const { x[u] = __ldcg(x + u) + s[0]; }
    };

    // What a unit's output needs from memory besides its sums, loaded when the unit starts, so that the round trip
    // overlaps the unit's weights instead of following them: x[u] for the residual add (only the unit's own warp
    // writes it during the phase; the same sum as PDResidualOut's), nothing for the others.
    template <class Out> struct PDPreload {
        __device__ static float load(const Out&, int) { return 0.f; }
        __device__ static void store(const Out& out, int u, const float* s, float) { out.store(u, 0, s); }
    };
    template <> struct PDPreload<PDResidualOut> {
        __device__ static float load(const PDResidualOut& out, int u) { return __ldcg(out.x + u); }
        __device__ static void store(const PDResidualOut& out, int u, const float* s, float pre) { out.x[u] = pre + s[0]; }
    };

    __device__ __forceinline__ unsigned long long pd_now() {
        unsigned long long t;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
        return t;
    }

    // Every block arrives (its first thread adds one to the counter after the block's writes), then waits until the
    // counter reaches the next multiple of the grid size. In two halves, so that work that needs no other block
    // (starting the next GEMV's weight copies) runs between them: the arrival is not queued behind those copies.
    // trace (when not null): this block's arrival and departure times at barrier `mark` (gpu-check's phase timing).
    __device__ __forceinline__ void pd_grid_arrive(unsigned* arrived, unsigned& target, unsigned long long* trace, int mark) {
        __syncthreads();
        target += gridDim.x;
        if (threadIdx.x == 0) {
            if (trace) trace[2 * mark] = pd_now();
            if (PD_ACQREL_ARRIVE) {
                asm volatile("fence.acq_rel.gpu;\n\tred.relaxed.gpu.global.add.u32 [%0], %1;" :: "l"(arrived), "r"(1u) : "memory");
            } else {
                __threadfence();
                atomicAdd(arrived, 1u);
            }
        }
    }
    __device__ __forceinline__ void pd_grid_wait(unsigned* arrived, unsigned target, unsigned long long* trace, int mark) {
        if (threadIdx.x == 0) {
            unsigned seen;
            do { asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(arrived) : "memory"); } while (!PD_DIAG_NO_WAIT && seen < target);
            if (trace) trace[2 * mark + 1] = pd_now();
        }
        __syncthreads();
    }

    // A barrier across which `next` (a PDStream) starts its first copies.
    template <class Stream>
    __device__ __forceinline__ void pd_grid_sync_starting(Stream& next, unsigned* arrived, unsigned& target, unsigned long long* trace, int mark) {
        pd_grid_arrive(arrived, target, trace, mark);
        next.prologue();
        pd_grid_wait(arrived, target, trace, mark);
    }

    // The weight stream of one warp through a GEMV. A warp owns whole units (every warp of the grid: units w, w + all
    // warps, ...) and computes each one's ks parts itself, one after the other, with gemv_core's per-part arithmetic
    // (a lane's chunks (part · 32 + lane) · GEMV_VEC + k · step in order, the warp's shuffle sum) and the parts added in
    // order: the GEMV kernels' bits, without the block's shared sums and barriers. Its chunks are copied with cp.async
    // into the warp's ring of PD_STAGES slots in shared memory, PD_STAGES - 1 ahead of their use: nothing is held in
    // registers while they fly, and a GEMV's first copies start before the grid barrier that precedes it.
    template <int NOUT, class Out>
    struct PDStream {
        const gemm_t* w; int inputs, units, ks; Out out;
        uint4* ring;                      // this warp's PD_STAGES × 32 chunks
        int first, stride, count;         // this warp's units: first, first + stride, ... (count of them)
        int step, kmax;                   // a part's chunks: k · step from its base, k < kmax (those below inputs)
        int r, p, k, n, slot;             // the next chunk to copy: unit r, part p, chunk k, output row n, ring slot
        int issued;                       // chunks issued (PD_LEAD < PD_PRIME only)
        const gemm_t* wr[NOUT];           // unit r's weight rows

        __device__ __forceinline__ PDStream(const gemm_t* w_, int inputs_, int units_, int ks_, const Out& out_, uint4* ring_)
            : w(w_), inputs(inputs_), units(units_), ks(ks_), out(out_), ring(ring_) {
            stride = gridDim.x * PD_SUBS * 8;
            first = PD_SPREAD ? (threadIdx.x >> 5) * gridDim.x + blockIdx.x : blockIdx.x * PD_SUBS * 8 + (threadIdx.x >> 5);
            count = first < units ? (units - first + stride - 1) / stride : 0;
            step = 32 * GEMV_VEC * ks;
            kmax = (inputs + step - 1) / step;
            r = 0; p = 0; k = 0; n = 0; slot = 0; issued = 0;
            locate();
        }
        __device__ __forceinline__ int base(int part) const { return (part * 32 + (threadIdx.x & 31)) * GEMV_VEC; }
        __device__ __forceinline__ void locate() {
            int u = first + r * stride;
            #pragma unroll
            for (int m = 0; m < NOUT; m++) wr[m] = w + (long)(r < count ? out.row(u, m) : 0) * inputs;
        }
        // Copies the next chunk (none past the end) as one commit group.
        __device__ __forceinline__ void issue() {
            if (PD_LEAD < PD_PRIME) issued++;
            if (r < count) {
                int i = base(p) + k * step;
                // wr indexed by constants only (a runtime index would put the array in local memory); NOUT ≤ 2.
                const gemm_t* row = n == 0 ? wr[0] : wr[NOUT - 1];
                if (i < inputs) cp_async16(ring + slot * 32 + (threadIdx.x & 31), row + i, true);
                slot = slot + 1 == PD_STAGES ? 0 : slot + 1;
                if (++n == NOUT) {
                    n = 0;
                    if (++k == kmax) {
                        k = 0;
                        if (++p == ks) { p = 0; ++r; locate(); }
                    }
                }
            }
            cp_async_commit();
        }
        // The first PD_PRIME chunks.
        __device__ void prologue() {
            #pragma unroll 1
            for (int i = 0; i < PD_PRIME; i++) issue();
        }
        // Before use c (counted from the stream's first): the chunk PD_LEAD ahead of it, or an empty group while the
        // prologue's deeper copies still lead by more. Then chunk c's group is complete after wait(c).
        __device__ __forceinline__ void issue_before(int c) {
            if (PD_LEAD < PD_PRIME && issued > c + PD_LEAD) cp_async_commit();
            else issue();
        }
        __device__ __forceinline__ static void wait(int c) {
            if (PD_LEAD < PD_PRIME && c < PD_PRIME) cp_async_wait<PD_PRIME>();
            else cp_async_wait<PD_LEAD>();
        }
    };

    // Runs a stream's units over xs (shared memory), after its prologue.
    template <int NOUT, class Out>
    __device__ __forceinline__ void pd_gemv(PDStream<NOUT, Out>& st, const gemm_t* xs) {
        int lane = threadIdx.x & 31, slot = 0, c = 0;
        for (int r = 0; r < st.count; r++) {
            float sum[NOUT];
            float pre = lane == 0 ? PDPreload<Out>::load(st.out, st.first + r * st.stride) : 0.f;
            for (int p = 0; p < st.ks; p++) {
                float acc[NOUT];
                #pragma unroll
                for (int m = 0; m < NOUT; m++) acc[m] = 0.f;
                for (int k = 0; k < st.kmax; k++) {
                    int i = st.base(p) + k * st.step;
                    #pragma unroll
                    for (int m = 0; m < NOUT; m++) {
                        st.issue_before(c);
                        st.wait(c++);
                        if (i < st.inputs) {
                            float wf[GEMV_VEC], xf[GEMV_VEC];
                            unpack(st.ring[slot * 32 + lane], wf);
                            unpack(*(const uint4*)(xs + i), xf);
                            #pragma unroll
                            for (int e = 0; e < GEMV_VEC; e++) acc[m] = fmaf(wf[e], xf[e], acc[m]);
                        }
                        slot = slot + 1 == PD_STAGES ? 0 : slot + 1;
                    }
                }
                #pragma unroll
                for (int m = 0; m < NOUT; m++) {
                    float s = acc[m];
                    #pragma unroll
                    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffff, s, off);
                    sum[m] = p == 0 ? s : sum[m] + s;
                }
            }
            if (lane == 0) PDPreload<Out>::store(st.out, st.first + r * st.stride, sum, pre);
        }
    }

    // xs = rmsnorm(x) as GEMM inputs: the first 256 threads sum as rmsnorm_bf16 and block_sum do (same bits). Where x
    // fits PD_NORM_REGS values a thread, those threads load their values of x and of the norm weights at once (one
    // round trip at the head of the phase instead of one per value and a second for the scaling) and scale them.
    #define PD_NORM_REGS 8
    // red[8] = 1 / rms from each of the first 256 threads' sum of squares s, summed as block_sum does.
    __device__ __forceinline__ void pd_norm_scale(float s, float eps, int D, float* red) {
        int tid = threadIdx.x;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
        if ((tid & 31) == 0) red[tid >> 5] = s;
        GroupSync{1}();
        if (tid < 32) {
            s = tid < (DECODE_ATT_THREADS >> 5) ? red[tid] : 0.f;
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
            if (tid == 0) red[8] = rsqrtf(s / D + eps);
        }
    }
    __device__ void pd_stage_norm(const float* x, const float* nw, float eps, int D, gemm_t* xs, float* red) {
        int tid = threadIdx.x;
        if (D <= DECODE_ATT_THREADS * PD_NORM_REGS) {
            float v[PD_NORM_REGS], wn[PD_NORM_REGS];
            if (tid < DECODE_ATT_THREADS) {
                #pragma unroll
                for (int j = 0; j < PD_NORM_REGS; j++) {
                    int i = tid + j * DECODE_ATT_THREADS;
                    v[j] = i < D ? __ldcg(x + i) : 0.f;
                    wn[j] = i < D ? nw[i] : 0.f;
                }
                float s = 0.f;
                #pragma unroll
                for (int j = 0; j < PD_NORM_REGS; j++) if (tid + j * DECODE_ATT_THREADS < D) s += v[j] * v[j];
                pd_norm_scale(s, eps, D, red);
            }
            __syncthreads();
            if (tid < DECODE_ATT_THREADS) {
                float scale = red[8];
                #pragma unroll
                for (int j = 0; j < PD_NORM_REGS; j++) {
                    int i = tid + j * DECODE_ATT_THREADS;
                    if (i < D) xs[i] = to_gemm(v[j] * scale * wn[j]);
                }
            }
            __syncthreads();
            return;
        }
        if (tid < DECODE_ATT_THREADS) {
            float s = 0.f;
            for (int i = tid; i < D; i += DECODE_ATT_THREADS) {
                float v = __ldcg(x + i);
                s += v * v;
            }
            pd_norm_scale(s, eps, D, red);
        }
        __syncthreads();
        float scale = red[8];
        for (int i = tid; i < D; i += PD_THREADS) xs[i] = to_gemm(__ldcg(x + i) * scale * nw[i]);
        __syncthreads();
    }

    // xs = the attention output of row 0 from its split partials (PD_MERGE_ALL): decode_attention_block's merge (in
    // split order, O / L as a GEMM input) for every head. Up to PD_MERGE_SPLITS splits at a time in one round trip:
    // each thread's PD_MERGE_SPLITS outputs o of its PD_THREADS-strided dims in registers, every (head, split)'s max and
    // sum in shared memory (ml, 2 · heads · PD_MERGE_SPLITS floats).
    #define PD_MERGE_SPLITS 16
    #define PD_MERGE_OUTS 4
    __device__ void pd_merge_stage(const float* partials, const int* pos, int heads, int hd, int max_splits, gemm_t* xs, float* ml) {
        int n = pos[0] + 1, splits = (n + ATT_SPLIT - 1) / ATT_SPLIT, QD = heads * hd;
        float M[PD_MERGE_OUTS], L[PD_MERGE_OUTS], O[PD_MERGE_OUTS];
        #pragma unroll
        for (int u = 0; u < PD_MERGE_OUTS; u++) { M[u] = NEG_INF; L[u] = 0.f; O[u] = 0.f; }
        for (int s0 = 0; s0 < splits; s0 += PD_MERGE_SPLITS) {
            int count = min(PD_MERGE_SPLITS, splits - s0);
            float o[PD_MERGE_OUTS][PD_MERGE_SPLITS];
            #pragma unroll
            for (int u = 0; u < PD_MERGE_OUTS; u++) {
                int i = threadIdx.x + u * PD_THREADS;
                const float* p = partials + ((long)(i / hd) * max_splits + s0) * (hd + 2) + i % hd;
                #pragma unroll
                for (int s = 0; s < PD_MERGE_SPLITS; s++) if (i < QD && s < count) o[u][s] = __ldcg(p + s * (hd + 2));
            }
            for (int j = threadIdx.x; j < 2 * heads * count; j += PD_THREADS) {
                int h = j / (2 * count), s = j / 2 % count;
                ml[j] = __ldcg(partials + ((long)h * max_splits + s0 + s) * (hd + 2) + hd + (j & 1));
            }
            __syncthreads();
            #pragma unroll
            for (int u = 0; u < PD_MERGE_OUTS; u++) {
                int i = threadIdx.x + u * PD_THREADS;
                const float* mlh = ml + 2 * count * (i / hd);
                #pragma unroll
                for (int s = 0; s < PD_MERGE_SPLITS; s++) if (i < QD && s < count) merge_split(M[u], L[u], O[u], mlh[2 * s], mlh[2 * s + 1], o[u][s]);
            }
            __syncthreads();
        }
        #pragma unroll
        for (int u = 0; u < PD_MERGE_OUTS; u++) {
            int i = threadIdx.x + u * PD_THREADS;
            if (i < QD) xs[i] = to_gemm(O[u] / L[u]);
        }
        // Heads beyond PD_MERGE_OUTS · PD_THREADS outputs (not this model's): one at a time.
        for (int i = threadIdx.x + PD_MERGE_OUTS * PD_THREADS; i < QD; i += PD_THREADS) {
            const float* p = partials + (long)(i / hd) * max_splits * (hd + 2);
            float m = NEG_INF, l = 0.f, v = 0.f;
            for (int s = 0; s < splits; s++) merge_split(m, l, v, __ldcg(p + s * (hd + 2) + hd), __ldcg(p + s * (hd + 2) + hd + 1), __ldcg(p + s * (hd + 2) + i % hd));
            xs[i] = to_gemm(v / l);
        }
        __syncthreads();
    }

    // xs = src (n GEMM elements, a multiple of GEMV_VEC), read around L1.
    __device__ void pd_stage(const gemm_t* src, int n, gemm_t* xs) {
        for (int i = threadIdx.x * GEMV_VEC; i < n; i += PD_THREADS * GEMV_VEC) *(uint4*)(xs + i) = __ldcg((const uint4*)(src + i));
        __syncthreads();
    }

    // Every block is past its last barrier once all have counted themselves done: the last one resets both words.
    __device__ __forceinline__ void pd_finish(unsigned* sync_words, unsigned long long* trace, int layers) {
        __syncthreads();
        if (threadIdx.x == 0) {
            if (trace) trace[2 * 5 * layers] = pd_now();
            __threadfence();
            if (atomicAdd(sync_words + 1, 1u) == gridDim.x - 1) {
                sync_words[0] = 0;
                sync_words[1] = 0;
                __threadfence();
            }
        }
    }

    """#
}
