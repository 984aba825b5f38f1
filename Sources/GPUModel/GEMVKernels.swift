extension GPUKernels {
    /// The GEMV for decode's few-row GEMMs (alone, or fused with what comes before and after it) and for every GEMM
    /// in batch-invariant mode.
    static let gemvSource = #"""
    // y[t][o] = Σ_i x[t][i]·W[o][i] for up to GEMV_ROWS rows: a warp streams NOUT rows of W with 16-byte loads, AHEAD
    // chunks per lane in flight, fp32 accumulation in a fixed order per output (lane by lane, chunk by chunk; AHEAD
    // and NOUT do not change it), warp-shuffle reduction. Decode's GEMMs (cuBLAS's kernels leave most of the
    // bandwidth unused there), and every GEMM in batch-invariant mode: an output's arithmetic is the same whatever the
    // number of rows. The fused forms do the neighbouring per-row work in the same launch, with exactly the
    // operations of the separate kernels (so a fused decode step equals an unfused one bit for bit):
    //   prologue: x rows RMS-normalized into shared memory (rmsnorm_bf16's sums and expression);
    //   epilogue: plain store, residual add into x, SwiGLU of a gate row and its up row, or bias + RoPE + KV-cache write.
    // inputs must be a multiple of 8.
    #define GEMV_ROWS 8
    #ifdef GEMM_FP32
    #define GEMV_VEC 4
    __device__ __forceinline__ void unpack(uint4 v, float* f) {
        f[0] = __uint_as_float(v.x); f[1] = __uint_as_float(v.y); f[2] = __uint_as_float(v.z); f[3] = __uint_as_float(v.w);
    }
    #else
    #define GEMV_VEC 8
    __device__ __forceinline__ void unpack(uint4 v, float* f) {
        unsigned u[4] = {v.x, v.y, v.z, v.w};
        #pragma unroll
        for (int k = 0; k < 4; k++) { f[2 * k] = __uint_as_float(u[k] << 16); f[2 * k + 1] = __uint_as_float(u[k] & 0xffff0000u); }
    }
    #endif

    template <int AHEAD, int NOUT>
    __device__ __forceinline__ void gemv_load(const gemm_t* const (&w)[NOUT], int base, int step, int inputs, uint4 (&wv)[NOUT][AHEAD]) {
        #pragma unroll
        for (int u = 0; u < AHEAD; u++) {
            int i = base + u * step;
            #pragma unroll
            for (int n = 0; n < NOUT; n++) if (i < inputs) wv[n][u] = *(const uint4*)(w[n] + i);
        }
    }

    template <int AHEAD, int NOUT, int R>
    __device__ __forceinline__ void gemv_accumulate(const uint4 (&wv)[NOUT][AHEAD], const gemm_t* x, int rows, int base, int step,
                                                    int inputs, float (&acc)[NOUT][R]) {
        #pragma unroll
        for (int u = 0; u < AHEAD; u++) {
            int i = base + u * step;
            if (i >= inputs) break;
            #pragma unroll
            for (int n = 0; n < NOUT; n++) {
                float wf[GEMV_VEC];
                unpack(wv[n][u], wf);
                #pragma unroll
                for (int t = 0; t < R; t++) {
                    if (t < rows) {
                        float xf[GEMV_VEC];
                        unpack(*(const uint4*)(x + (long)t * inputs + i), xf);
                        #pragma unroll
                        for (int k = 0; k < GEMV_VEC; k++) acc[n][t] = fmaf(wf[k], xf[k], acc[n][t]);
                    }
                }
            }
        }
    }

    // rows rows of fp32 x (row_index[t], or t) RMS-normalized into xs as GEMM inputs: rmsnorm_bf16's per-thread sums
    // (blockDim 256), block_sum and expression, so the result is the same bits.
    __device__ void stage_normalized(const float* x, const int* row_index, const float* nw, float eps, int rows, int D, gemm_t* xs) {
        for (int t = 0; t < rows; t++) {
            const float* row = x + (long)(row_index ? row_index[t] : t) * D;
            float s = 0.f;
            // The norm weights are prefetched into L1 with the row, so the second loop does not wait for L2 after
            // the reduction's barriers (a prefetch holds no registers: occupancy unchanged).
            for (int i = threadIdx.x; i < D; i += blockDim.x) {
                s += row[i] * row[i];
                asm volatile("prefetch.global.L1 [%0];" :: "l"(nw + i));
            }
            float scale = rsqrtf(block_sum(s) / D + eps);
            for (int i = threadIdx.x; i < D; i += blockDim.x) xs[(long)t * D + i] = to_gemm(row[i] * scale * nw[i]);
            __syncthreads();  // block_sum's shared word is reused by the next row; xs complete before use
        }
    }

    // ks warps per unit (NOUT rows of W: unit → out.row(unit, n)), each over every ks-th 16-byte chunk of a lane's
    // inputs; blocks of 8 warps; ks in 1, 2, 4, 8. The caller derives ks from the weight matrix's shape alone
    // (GPUGemm.split), so an output's arithmetic never depends on the row count or on which kernel runs it; it
    // multiplies the warps of the small matrices, which otherwise leave most of the SMs' warp slots empty. NORM: x is fp32 and normalized by the prologue into dynamic shared
    // memory (rows × inputs GEMM elements); else x is GEMM elements. The first AHEAD chunks of W are loaded before
    // waiting for the previous kernel (programmatic dependent launch): weights never depend on it.
    template <int AHEAD, int NOUT, int R, bool NORM, class Out>
    __device__ void gemv_core(const void* xin, const int* row_index, const float* nw, float eps, const gemm_t* w, int rows,
                              int inputs, int units, int ks, const Out& out) {
        extern __shared__ __align__(16) unsigned char gemv_shared[];
        __shared__ float parts[8][NOUT][R];
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
        int unit = blockIdx.x * (8 / ks) + warp / ks, part = warp % ks, step = 32 * GEMV_VEC * ks;
        bool active = unit < units;
        const gemm_t* wr[NOUT];
        #pragma unroll
        for (int n = 0; n < NOUT; n++) wr[n] = w + (long)(active ? out.row(unit, n) : 0) * inputs;
        uint4 wv[NOUT][AHEAD];
        int base = (part * 32 + lane) * GEMV_VEC;
        if (active) gemv_load<AHEAD, NOUT>(wr, base, step, inputs, wv);
        pdl_wait();
        pdl_trigger();
        const gemm_t* x = (const gemm_t*)xin;
        if (NORM) {
            stage_normalized((const float*)xin, row_index, nw, eps, rows, inputs, (gemm_t*)gemv_shared);
            x = (const gemm_t*)gemv_shared;
        }
        float acc[NOUT][R];
        #pragma unroll
        for (int n = 0; n < NOUT; n++)
            #pragma unroll
            for (int t = 0; t < R; t++) acc[n][t] = 0.f;
        while (active && base < inputs) {
            gemv_accumulate<AHEAD, NOUT, R>(wv, x, rows, base, step, inputs, acc);
            base += step * AHEAD;
            if (base >= inputs) break;
            gemv_load<AHEAD, NOUT>(wr, base, step, inputs, wv);
        }
        // Warp sums, then the unit's KSPLIT warp sums added in part order by its first warp.
        #pragma unroll
        for (int t = 0; t < R; t++) {
            if (t < rows) {
                #pragma unroll
                for (int n = 0; n < NOUT; n++) {
                    float s = acc[n][t];
                    #pragma unroll
                    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffff, s, off);
                    if (lane == 0) parts[warp][n][t] = s;
                }
            }
        }
        __syncthreads();
        if (!active || part != 0 || lane != 0) return;
        for (int t = 0; t < rows; t++) {
            float s[NOUT];
            #pragma unroll
            for (int n = 0; n < NOUT; n++) {
                s[n] = parts[warp][n][t];
                for (int p = 1; p < ks; p++) s[n] += parts[warp + p][n][t];
            }
            out.store(unit, t, s);
        }
    }

    // y[t][o] = s
    struct StoreOut {
        float* y; int outputs;
        __device__ int row(int u, int) const { return u; }
        __device__ void store(int u, int t, const float* s) const { y[(long)t * outputs + u] = s[0]; }
    };
    // x[t][o] += s: the residual add of the attention output and the FFN (add_rmsnorm_bf16's and residual_add's add).
    struct ResidualOut {
        float* x; int outputs;
        __device__ int row(int u, int) const { return u; }
        __device__ void store(int u, int t, const float* s) const { x[(long)t * outputs + u] += s[0]; }
    };
    // act[t][j] = silu(gate_j) · up_j from rows j and F + j of the stacked gate|up matrix (swiglu_bf16's expression).
    struct SwiGLUOut {
        gemm_t* act; int F;
        __device__ int row(int u, int n) const { return u + n * F; }
        __device__ void store(int u, int t, const float* s) const {
            float g = s[0];
            act[(long)t * F + u] = to_gemm(g / (1.f + expf(-g)) * s[1]);
        }
    };
    // Rows i and i + hd/2 of one head of the stacked Q|K|V matrix: bias, then rotate-half RoPE for Q (into q) and K,
    // K and V into their paged cache slot and its bf16 shadow (rope_split's expressions).
    struct RopeOut {
        float* q; float* kc; float* vc; bf16* k16; bf16* v16; const float* bias; const int* pos; const float* inv_freq; const int* row_block; const int* row_slot;
        int layer, layers, bs, heads, kvHeads, hd;
        __device__ int row(int u, int n) const { int half = hd / 2; return (u / half) * hd + u % half + n * half; }
        __device__ void store(int u, int t, const float* s) const {
            int half = hd / 2, h = u / half, i = u % half, kvd = kvHeads * hd;
            float a = s[0], b = s[1];
            if (bias) { a += bias[h * hd + i]; b += bias[h * hd + i + half]; }
            long slot = (((long)row_block[t] * layers + layer) * bs + row_slot[t]) * kvd;
            if (h >= heads + kvHeads) {
                long at = slot + (h - heads - kvHeads) * hd;
                store_kv(vc, v16, at + i, a);
                store_kv(vc, v16, at + i + half, b);
                return;
            }
            float sn, cs;
            sincosf((float)pos[t] * inv_freq[i], &sn, &cs);
            store_rope_pair(q, kc, k16, t, h, i, heads, hd, slot, a, b, sn, cs);
        }
    };

    extern "C" {
    // Plain GEMV over any number of rows, GEMV_ROWS per blockIdx.y. Few rows: more of W in flight per lane; many rows
    // (batch-invariant mode): fewer registers, more warps (same arithmetic).
    __global__ void gemv(const gemm_t* x, const gemm_t* w, float* y, int rows, int inputs, int outputs, int ks) {
        int t0 = blockIdx.y * GEMV_ROWS;
        StoreOut out = {y + (long)t0 * outputs, outputs};
        gemv_core<4, 1, GEMV_ROWS, false>(x + (long)t0 * inputs, nullptr, nullptr, 0.f, w, min(GEMV_ROWS, rows - t0), inputs, outputs, ks, out);
    }
    __global__ void gemv_rows(const gemm_t* x, const gemm_t* w, float* y, int rows, int inputs, int outputs, int ks) {
        int t0 = blockIdx.y * GEMV_ROWS;
        StoreOut out = {y + (long)t0 * outputs, outputs};
        gemv_core<1, 1, GEMV_ROWS, false>(x + (long)t0 * inputs, nullptr, nullptr, 0.f, w, min(GEMV_ROWS, rows - t0), inputs, outputs, ks, out);
    }
    }  // extern "C"

    // The fused forms for up to R rows, A chunks of W in flight per lane and output row. A step of one row (batch-1
    // decode) has its own instantiation: one accumulator per output instead of GEMV_ROWS, no per-row predicates.
    #define FUSED_GEMVS(SUFFIX, A, R) \
    /* x[t] += x_in[t]·Wᵀ (o and down projections of a decode step). */ \
    extern "C" __global__ void gemv_residual##SUFFIX(const gemm_t* x_in, const gemm_t* w, float* x, int rows, int inputs, int outputs, int ks) { \
        ResidualOut out = {x, outputs}; \
        gemv_core<A, 1, R, false>(x_in, nullptr, nullptr, 0.f, w, rows, inputs, outputs, ks, out); \
    } \
    /* logits[t] = rmsnorm(x[row_index[t]])·Wᵀ (the vocabulary projection of the selected rows). */ \
    extern "C" __global__ void gemv_norm##SUFFIX(const float* x, const int* row_index, const float* nw, float eps, const gemm_t* w, \
                                                 float* y, int rows, int inputs, int outputs, int ks) { \
        StoreOut out = {y, outputs}; \
        gemv_core<A, 1, R, true>(x, row_index, nw, eps, w, rows, inputs, outputs, ks, out); \
    } \
    /* act[t] = swiglu(rmsnorm(x[t])·[gate|up]ᵀ). */ \
    extern "C" __global__ void gemv_norm_swiglu##SUFFIX(const float* x, const float* nw, float eps, const gemm_t* w, gemm_t* act, \
                                                        int rows, int inputs, int F, int ks) { \
        SwiGLUOut out = {act, F}; \
        gemv_core<A / 2, 2, R, true>(x, nullptr, nw, eps, w, rows, inputs, F, ks, out); \
    } \
    /* q, K/V cache slots = rope(rmsnorm(x[t])·[Q|K|V]ᵀ + bias). */ \
    extern "C" __global__ void gemv_norm_rope##SUFFIX(const float* x, const float* nw, float eps, const gemm_t* w, const float* bias, \
            float* q, float* kc, float* vc, const int* pos, const float* inv_freq, const int* row_block, const int* row_slot, int layer, \
            int layers, int bs, int heads, int kvHeads, int hd, int rows, int inputs, bf16* k16, bf16* v16, int ks) { \
        RopeOut out = {q, kc, vc, k16, v16, bias, pos, inv_freq, row_block, row_slot, layer, layers, bs, heads, kvHeads, hd}; \
        gemv_core<A / 2, 2, R, true>(x, nullptr, nw, eps, w, rows, inputs, (heads + 2 * kvHeads) * hd / 2, ks, out); \
    }
    FUSED_GEMVS(, 4, GEMV_ROWS)
    FUSED_GEMVS(_1, 4, 1)

    """#
}
