extension GPUKernels {
    /// The default mode's prefill attention: tensor-core (mma.sync) flash attention over the KV cache's bf16 shadow.
    static let tensorCoreAttentionSource = #"""
    // Prefill attention on tensor cores (bf16 mode, default prefill): one block per (tile of 64 rows of one sequence,
    // HPB query heads sharing one K/V head), 4 warps per head, each warp owning 16 rows. K and V come from the cache's
    // bf16 shadow in chunks of 64 keys, copied into shared memory with cp.async, once for all HPB heads. S = Q·Kᵀ and O += P·V run as mma.sync m16n8k16
    // (bf16 in, fp32 accumulate) with P kept in registers (the score accumulators are the next MMA's A operand); K's
    // B fragments come from ldmatrix, V's from ldmatrix.trans. Online softmax in base 2 per row, the four lanes of a
    // row combined with shuffles. Tiles run last first (the causal mask makes later tiles the longest).
    // Three stages of K/V: chunk j + 2 is copied into the stage chunk j - 1 used, once every warp has passed the barrier
    // that makes chunk j visible (and so is done with j - 1): one barrier a chunk, two chunks in flight.
    // HD = head dim, 64 or 128. Dynamic shared memory: GPULlama.mmaAttentionSharedBytes.
    #define MMA_ROWS 64
    #define MMA_KEYS 64
    #define MMA_PAD 8
    #define MMA_STAGES 3
    // Two floats to a bf16 pair (lo in the low half) in one instruction.
    __device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
        unsigned r;
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
        return r;
    }
    __device__ __forceinline__ void mma_bf16(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    }
    // Four 8×8 bf16 matrices from shared memory; lanes 8i..8i+7 address the rows of matrix i. Each lane receives, of
    // each matrix, the pair at row lane / 4, columns (lane % 4)·2 and +1: an mma B fragment of a [key][dim] chunk.
    __device__ __forceinline__ void ldmatrix_x4(const bf16* p, unsigned& b0, unsigned& b1, unsigned& b2, unsigned& b3) {
        unsigned a = (unsigned)__cvta_generic_to_shared(p);
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"(a));
    }
    // The same, transposed: the B fragments (k = key, n = dim) of two 8-dim n-tiles of a row-major [key][dim] V chunk.
    // Lanes 0-7 / 8-15 / 16-23 / 24-31 address rows k0..k0+7 / k0+8.. at dims n0, then the same at n0 + 8.
    __device__ __forceinline__ void ldmatrix_x4_trans(const bf16* p, unsigned& b0, unsigned& b1, unsigned& b2, unsigned& b3) {
        unsigned a = (unsigned)__cvta_generic_to_shared(p);
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"(a));
    }
    // 2^x on the special-function unit (subnormal results flush to zero: a probability below 2^-126 of the row's
    // largest score).
    __device__ __forceinline__ float fast_exp2(float x) {
        float y;
        asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
        return y;
    }
    template <int HD, int HPB>
    __device__ void attention_mma(const float* q, const bf16* k16, const bf16* v16, gemm_t* out, const int* row_pos, const int* row_table,
                                  const int* tables, const int* tiles, int layer, int layers, int bs, int heads, int kvHeads, float scale) {
        extern __shared__ __align__(16) unsigned char mma_shared[];
        typedef bf16 Chunk[MMA_KEYS][HD + MMA_PAD];
        Chunk* Ks = (Chunk*)mma_shared;  // [MMA_STAGES]
        Chunk* Vs = Ks + MMA_STAGES;
        pdl_wait();
        pdl_trigger();
        int tile = gridDim.x - 1 - blockIdx.x;
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
        int h = blockIdx.y * HPB + warp / 4, first = tiles[2 * tile], count = tiles[2 * tile + 1];
        int kvh = h / (heads / kvHeads), kvDim = kvHeads * HD;
        const int* table = tables + row_table[first];
        int r0 = (warp % 4) * 16 + g, r1 = r0 + 8;
        int pos0 = r0 < count ? row_pos[first + r0] : -1, pos1 = r1 < count ? row_pos[first + r1] : -1;
        int warpMax = max(pos0, pos1), warpMin = min(pos0, pos1);
        for (int o = 16; o > 0; o >>= 1) {
            warpMax = max(warpMax, __shfl_xor_sync(0xffffffff, warpMax, o));
            warpMin = min(warpMin, __shfl_xor_sync(0xffffffff, warpMin, o));
        }
        // Cache blocks of a power-of-two size (the usual case) are found with a shift instead of a division.
        int bsShift = (bs & (bs - 1)) == 0 ? __ffs(bs) - 1 : -1;
        int nMax = 0;
        for (int r = 0; r < count; r++) nMax = max(nMax, row_pos[first + r] + 1);
        // Chunk j0's K and V rows into stage `st`: 16-byte pieces, HD / 8 per key row.
        auto load = [&](int j0, int st) {
            for (int i = threadIdx.x; i < MMA_KEYS * HD / 8; i += blockDim.x) {
                int key = i / (HD / 8), d = (i % (HD / 8)) * 8, j = j0 + key;
                bool valid = j < nMax;
                int blk = bsShift >= 0 ? j >> bsShift : j / bs;
                long at = valid ? (((long)table[blk] * layers + layer) * bs + (j - blk * bs)) * kvDim + kvh * HD + d : 0;
                cp_async16(&Ks[st][key][d], k16 + at, valid);
                cp_async16(&Vs[st][key][d], v16 + at, valid);
            }
            cp_async_commit();
        };
        load(0, 0);
        load(MMA_KEYS, 1);  // zero-filled past the end
        // Q as A fragments, one per 16 dims: rows r0/r1, dims tig*2 (+1) and tig*2 + 8 (+9).
        unsigned qa[HD / 16][4];
        const float* q0 = q + ((long)(first + min(r0, count - 1)) * heads + h) * HD;
        const float* q1 = q + ((long)(first + min(r1, count - 1)) * heads + h) * HD;
        #pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            int d = kk * 16 + tig * 2;
            qa[kk][0] = pack_bf16(q0[d], q0[d + 1]);
            qa[kk][1] = pack_bf16(q1[d], q1[d + 1]);
            qa[kk][2] = pack_bf16(q0[d + 8], q0[d + 9]);
            qa[kk][3] = pack_bf16(q1[d + 8], q1[d + 9]);
        }
        float o[HD / 8][4];
        #pragma unroll
        for (int n = 0; n < HD / 8; n++) { o[n][0] = 0.f; o[n][1] = 0.f; o[n][2] = 0.f; o[n][3] = 0.f; }
        float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.f, l1 = 0.f;
        float scale2 = scale * 1.4426950408889634f;  // scores in base 2: exp(x) = exp2(x·log2 e)
        for (int j0 = 0, st = 0; j0 < nMax; j0 += MMA_KEYS, st = st + 1 == MMA_STAGES ? 0 : st + 1) {
            cp_async_wait<1>();  // chunk j0 (chunk j0 + 1's group may still fly)
            __syncthreads();
            if (j0 + 2 * MMA_KEYS < nMax) load(j0 + 2 * MMA_KEYS, st == 0 ? MMA_STAGES - 1 : st - 1);
            else cp_async_commit();  // an empty group keeps the count
            if (warpMax >= j0) {  // else no key of this chunk for any of the warp's rows (uniform across the warp)
                float s[MMA_KEYS / 8][4];
                #pragma unroll
                for (int n = 0; n < MMA_KEYS / 8; n++) {
                    s[n][0] = 0.f; s[n][1] = 0.f; s[n][2] = 0.f; s[n][3] = 0.f;
                    #pragma unroll
                    for (int kk = 0; kk < HD / 16; kk += 2) {
                        unsigned b0, b1, b2, b3;
                        ldmatrix_x4(&Ks[st][n * 8 + (lane & 7)][kk * 16 + (lane >> 3) * 8], b0, b1, b2, b3);
                        mma_bf16(s[n], qa[kk][0], qa[kk][1], qa[kk][2], qa[kk][3], b0, b1);
                        mma_bf16(s[n], qa[kk + 1][0], qa[kk + 1][1], qa[kk + 1][2], qa[kk + 1][3], b2, b3);
                    }
                }
                // Scores stay unscaled until the exponent (scale2 > 0, so the largest is the same): keys past a row's
                // position are masked only in chunks that reach past the warp's first row.
                if (j0 + MMA_KEYS - 1 > warpMin) {
                    #pragma unroll
                    for (int n = 0; n < MMA_KEYS / 8; n++) {
                        int j = j0 + n * 8 + tig * 2;
                        if (j > pos0) s[n][0] = NEG_INF;
                        if (j + 1 > pos0) s[n][1] = NEG_INF;
                        if (j > pos1) s[n][2] = NEG_INF;
                        if (j + 1 > pos1) s[n][3] = NEG_INF;
                    }
                }
                float cm0 = NEG_INF, cm1 = NEG_INF;
                #pragma unroll
                for (int n = 0; n < MMA_KEYS / 8; n++) {
                    cm0 = fmaxf(cm0, fmaxf(s[n][0], s[n][1]));
                    cm1 = fmaxf(cm1, fmaxf(s[n][2], s[n][3]));
                }
                #pragma unroll
                for (int off = 1; off < 4; off <<= 1) {
                    cm0 = fmaxf(cm0, __shfl_xor_sync(0xffffffff, cm0, off));
                    cm1 = fmaxf(cm1, __shfl_xor_sync(0xffffffff, cm1, off));
                }
                float mn0 = fmaxf(m0, cm0 * scale2), mn1 = fmaxf(m1, cm1 * scale2);
                // A row with no visible key yet keeps m = -inf: use 0 as the reference so that no inf - inf appears.
                float ref0 = mn0 == NEG_INF ? 0.f : mn0, ref1 = mn1 == NEG_INF ? 0.f : mn1;
                float a0 = fast_exp2(m0 - ref0), a1 = fast_exp2(m1 - ref1);
                float sum0 = 0.f, sum1 = 0.f;
                #pragma unroll
                for (int n = 0; n < MMA_KEYS / 8; n++) {
                    // s · scale2 - ref rounded once; a masked key (-inf) gives 0.
                    s[n][0] = fast_exp2(fmaf(s[n][0], scale2, -ref0)); s[n][1] = fast_exp2(fmaf(s[n][1], scale2, -ref0));
                    s[n][2] = fast_exp2(fmaf(s[n][2], scale2, -ref1)); s[n][3] = fast_exp2(fmaf(s[n][3], scale2, -ref1));
                    sum0 += s[n][0] + s[n][1];
                    sum1 += s[n][2] + s[n][3];
                }
                #pragma unroll
                for (int off = 1; off < 4; off <<= 1) {
                    sum0 += __shfl_xor_sync(0xffffffff, sum0, off);
                    sum1 += __shfl_xor_sync(0xffffffff, sum1, off);
                }
                l0 = l0 * a0 + sum0; l1 = l1 * a1 + sum1;
                m0 = mn0; m1 = mn1;
                #pragma unroll
                for (int n = 0; n < HD / 8; n++) { o[n][0] *= a0; o[n][1] *= a0; o[n][2] *= a1; o[n][3] *= a1; }
                #pragma unroll
                for (int kk = 0; kk < MMA_KEYS / 16; kk++) {
                    unsigned p0 = pack_bf16(s[2 * kk][0], s[2 * kk][1]), p1 = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
                    unsigned p2 = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), p3 = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
                    #pragma unroll
                    for (int n = 0; n < HD / 8; n += 2) {
                        unsigned b0, b1, b2, b3;
                        ldmatrix_x4_trans(&Vs[st][kk * 16 + (lane & 15)][n * 8 + (lane >> 4) * 8], b0, b1, b2, b3);
                        mma_bf16(o[n], p0, p1, p2, p3, b0, b1);
                        mma_bf16(o[n + 1], p0, p1, p2, p3, b2, b3);
                    }
                }
            }
        }
        cp_async_wait<0>();  // no copy outlives the block
        #pragma unroll
        for (int n = 0; n < HD / 8; n++) {
            int d = n * 8 + tig * 2;
            if (r0 < count) {
                gemm_t* dst = out + ((long)(first + r0) * heads + h) * HD + d;
                dst[0] = to_gemm(o[n][0] / l0); dst[1] = to_gemm(o[n][1] / l0);
            }
            if (r1 < count) {
                gemm_t* dst = out + ((long)(first + r1) * heads + h) * HD + d;
                dst[0] = to_gemm(o[n][2] / l1); dst[1] = to_gemm(o[n][3] / l1);
            }
        }
    }

    extern "C" {
    // _2: two query heads per block (their K/V head shared, staged once for both), for models with at least two
    // query heads per K/V head.
    // Head dim 64: at most 128 registers a thread, so that two blocks of 8 warps share an SM.
    #define MMA_ENTRY(NAME, HD, HPB) \
    __global__ void __launch_bounds__(128 * HPB, HD == 64 ? 2 : 1) NAME(const float* q, const bf16* k16, const bf16* v16, gemm_t* out, const int* row_pos, \
            const int* row_table, const int* tables, const int* tiles, int layer, int layers, int bs, int heads, int kvHeads, int hd, \
            float scale) { \
        attention_mma<HD, HPB>(q, k16, v16, out, row_pos, row_table, tables, tiles, layer, layers, bs, heads, kvHeads, scale); \
    }
    MMA_ENTRY(attention_mma64, 64, 1)
    MMA_ENTRY(attention_mma128, 128, 1)
    MMA_ENTRY(attention_mma64_2, 64, 2)
    MMA_ENTRY(attention_mma128_2, 128, 2)
    }  // extern "C"

    """#
}
