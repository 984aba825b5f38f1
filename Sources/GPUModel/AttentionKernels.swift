extension GPUKernels {
    /// Causal GQA attention over the paged KV cache in three launch shapes (see the comment in the source).
    static let attentionSource = #"""
    // Causal GQA attention, batch invariant by construction: a row's positions are cut into splits of ATT_SPLIT at
    // fixed absolute boundaries; within a split, warp w takes positions w, w + ATT_WARPS, ... (lanes split the head
    // dimension: K and V rows are read coalesced; a warp reduction gives each score; online softmax per warp), the
    // warps' partials merge in warp order, and the splits merge in split order. Two launch shapes compute exactly
    // the same operations per row: few rows (decode) spread the splits over blocks and merge them in a second kernel;
    // many rows (prefill) take a tile of ATT_TILE rows of one sequence per block, stage each split's K/V in shared
    // memory once for the whole tile, and merge as they go. head_dim <= 128.
    #define ATT_WARPS 8
    #define ATT_SPLIT 64
    #define ATT_TILE 16

    struct GlobalKV {
        const float* kc; const float* vc; const int* table; int layer, layers, bs, kvDim, offset;
        __device__ long at(int j) const { return (((long)table[j / bs] * layers + layer) * bs + j % bs) * kvDim + offset; }
        __device__ const float* k(int j) const { return kc + at(j); }
        __device__ const float* v(int j) const { return vc + at(j); }
    };
    struct SharedKV {
        const float* ks; const float* vs; int j0, hd;
        __device__ const float* k(int j) const { return ks + (j - j0) * hd; }
        __device__ const float* v(int j) const { return vs + (j - j0) * hd; }
    };

    // The split [j0, j1) of one row: every warp's running max/sum/output, merged in warp order into (m, l, o[hd]).
    // Called by all threads of the block; `wo` is shared [ATT_WARPS][128], `wm`/`wl` shared [ATT_WARPS].
    template <class KV>
    __device__ void split_partial(const KV& kv, const float* qr, float scale, int j0, int j1, int hd,
                                  float* wm, float* wl, float (*wo)[128], float& m_out, float& l_out, float* o_out) {
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
        float qv[4], acc[4];
        #pragma unroll
        for (int k = 0; k < 4; k++) { int d = lane + 32 * k; qv[k] = d < hd ? qr[d] : 0.f; acc[k] = 0.f; }
        float m = NEG_INF, l = 0.f;
        for (int j = j0 + warp; j < j1; j += ATT_WARPS) {
            const float* kr = kv.k(j);
            const float* vr = kv.v(j);
            float s = 0.f;
            #pragma unroll
            for (int k = 0; k < 4; k++) { int d = lane + 32 * k; if (d < hd) s += qv[k] * kr[d]; }
            #pragma unroll
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
            s *= scale;
            float mn = fmaxf(m, s);
            float c = expf(m - mn), p = expf(s - mn);
            l = l * c + p;
            #pragma unroll
            for (int k = 0; k < 4; k++) { int d = lane + 32 * k; if (d < hd) acc[k] = acc[k] * c + p * vr[d]; }
            m = mn;
        }
        if (lane == 0) { wm[warp] = m; wl[warp] = l; }
        #pragma unroll
        for (int k = 0; k < 4; k++) { int d = lane + 32 * k; if (d < hd) wo[warp][d] = acc[k]; }
        __syncthreads();
        float M = NEG_INF;
        for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, wm[w]);
        float L = 0.f;
        for (int w = 0; w < ATT_WARPS; w++) L += wl[w] * expf(wm[w] - M);
        for (int d = threadIdx.x; d < hd; d += blockDim.x) {
            float o = 0.f;
            for (int w = 0; w < ATT_WARPS; w++) o += wo[w][d] * expf(wm[w] - M);
            o_out[d] = o;
        }
        m_out = M; l_out = L;
        __syncthreads();
    }

    // Running merge of split partials, in split order (the same operations in both launch shapes).
    __device__ __forceinline__ void merge_split(float& M, float& L, float& O, float m, float l, float o) {
        float mn = fmaxf(M, m), a = expf(M - mn), b = expf(m - mn);
        L = L * a + l * b;
        O = O * a + o * b;
        M = mn;
    }

    extern "C" {

    // Few rows: one block per (row, head, split); partials [row][head][split][hd + 2] (o..., m, l).
    __global__ void attention_split(const float* q, const float* kc, const float* vc, float* partials, const int* row_pos,
                                    const int* row_table, const int* tables, int layer, int layers, int bs, int heads,
                                    int kvHeads, int hd, float scale, int max_splits) {
        pdl_wait();
        pdl_trigger();
        __shared__ float wm[ATT_WARPS], wl[ATT_WARPS], wo[ATT_WARPS][128], o[128];
        int t = blockIdx.x, h = blockIdx.y, split = blockIdx.z;
        int n = row_pos[t] + 1, j0 = split * ATT_SPLIT;
        if (j0 >= n) return;
        int kvh = h / (heads / kvHeads);
        GlobalKV kv = {kc, vc, tables + row_table[t], layer, layers, bs, kvHeads * hd, kvh * hd};
        float m, l;
        split_partial(kv, q + ((long)t * heads + h) * hd, scale, j0, min(n, j0 + ATT_SPLIT), hd, wm, wl, wo, m, l, o);
        float* out = partials + (((long)t * heads + h) * max_splits + split) * (hd + 2);
        for (int d = threadIdx.x; d < hd; d += blockDim.x) out[d] = o[d];
        if (threadIdx.x == 0) { out[hd] = m; out[hd + 1] = l; }
    }

    __global__ void attention_combine(const float* partials, gemm_t* out, const int* row_pos, int heads, int hd, int max_splits) {
        pdl_wait();
        pdl_trigger();
        int t = blockIdx.x, h = blockIdx.y;
        int splits = (row_pos[t] + ATT_SPLIT) / ATT_SPLIT;
        const float* p = partials + ((long)t * heads + h) * max_splits * (hd + 2);
        for (int d = threadIdx.x; d < hd; d += blockDim.x) {
            float M = NEG_INF, L = 0.f, O = 0.f;
            for (int s = 0; s < splits; s++) {
                const float* ps = p + s * (hd + 2);
                merge_split(M, L, O, ps[hd], ps[hd + 1], ps[d]);
            }
            out[((long)t * heads + h) * hd + d] = to_gemm(O / L);
        }
    }

    // Many rows: one block per (tile of up to ATT_TILE consecutive rows of one sequence, head). tiles[i] = first row,
    // count. Dynamic shared memory: K and V of one split, 2 × ATT_SPLIT × hd floats.
    __global__ void attention_tiled(const float* q, const float* kc, const float* vc, gemm_t* out, const int* row_pos,
                                    const int* row_table, const int* tables, const int* tiles, int layer, int layers, int bs,
                                    int heads, int kvHeads, int hd, float scale) {
        pdl_wait();
        pdl_trigger();
        extern __shared__ float kvs[];
        __shared__ float wm[ATT_WARPS], wl[ATT_WARPS], wo[ATT_WARPS][128], o[128];
        __shared__ float rowM[ATT_TILE], rowL[ATT_TILE], rowO[ATT_TILE][128];
        int h = blockIdx.y, first = tiles[2 * blockIdx.x], count = tiles[2 * blockIdx.x + 1];
        int kvh = h / (heads / kvHeads), kvDim = kvHeads * hd;
        const int* table = tables + row_table[first];
        int nMax = 0;
        for (int r = 0; r < count; r++) nMax = max(nMax, row_pos[first + r] + 1);
        for (int i = threadIdx.x; i < ATT_TILE * 128; i += blockDim.x) rowO[i / 128][i % 128] = 0.f;
        if (threadIdx.x < ATT_TILE) { rowM[threadIdx.x] = NEG_INF; rowL[threadIdx.x] = 0.f; }
        float* ks = kvs;
        float* vs = kvs + ATT_SPLIT * hd;
        for (int j0 = 0; j0 < nMax; j0 += ATT_SPLIT) {
            int j1 = min(nMax, j0 + ATT_SPLIT);
            __syncthreads();
            for (int i = threadIdx.x; i < (j1 - j0) * hd; i += blockDim.x) {
                int j = j0 + i / hd, d = i % hd;
                long at = (((long)table[j / bs] * layers + layer) * bs + j % bs) * kvDim + kvh * hd + d;
                ks[i] = kc[at];
                vs[i] = vc[at];
            }
            __syncthreads();
            SharedKV kv = {ks, vs, j0, hd};
            for (int r = 0; r < count; r++) {
                int t = first + r, n = row_pos[t] + 1;
                if (j0 >= n) continue;  // uniform across the block
                float m, l;
                split_partial(kv, q + ((long)t * heads + h) * hd, scale, j0, min(n, j0 + ATT_SPLIT), hd, wm, wl, wo, m, l, o);
                // The row's running max and sum are read by every dimension's thread and replaced only after the
                // barrier: replaced in the loop, a later warp could merge against the new max (a race that made
                // repeated identical requests differ now and then).
                float newM = 0.f, newL = 0.f;
                for (int d = threadIdx.x; d < hd; d += blockDim.x) {
                    float M = rowM[r], L = rowL[r], O = rowO[r][d];
                    merge_split(M, L, O, m, l, o[d]);
                    rowO[r][d] = O;
                    if (d == 0) { newM = M; newL = L; }
                }
                __syncthreads();
                if (threadIdx.x == 0) { rowM[r] = newM; rowL[r] = newL; }
            }
        }
        __syncthreads();
        for (int i = threadIdx.x; i < count * hd; i += blockDim.x) {
            int r = i / hd, d = i % hd;
            out[((long)(first + r) * heads + h) * hd + d] = to_gemm(rowO[r][d] / rowL[r]);
        }
    }

    // Prefill attention in the default (not batch-invariant) mode, flash style: one block per (tile of FA_ROWS rows
    // of one sequence, head); each chunk of FA_KEYS keys is staged in shared memory (K transposed) once for the
    // whole tile; each warp owns FA_ROWS/8 rows, a lane owns 2 keys of the chunk for the scores and hd/32 output
    // dimensions for P·V; one max and one sum reduction per row and chunk. hd a multiple of 32, at most 128.
    #define FA_ROWS 64
    #define FA_KEYS 64
    #define FA_KT (FA_KEYS + 1)
    #define FA_RPW (FA_ROWS / 8)
    __global__ void attention_flash(const float* q, const float* kc, const float* vc, gemm_t* out, const int* row_pos,
                                    const int* row_table, const int* tables, const int* tiles, int layer, int layers, int bs,
                                    int heads, int kvHeads, int hd, float scale) {
        pdl_wait();
        pdl_trigger();
        extern __shared__ float sm[];
        float* Qs = sm;                        // [FA_ROWS][hd], pre-scaled
        float* Kt = Qs + FA_ROWS * hd;         // [hd][FA_KT]
        float* Vs = Kt + hd * FA_KT;           // [FA_KEYS][hd]
        float* Ps = Vs + FA_KEYS * hd;         // [8 warps][FA_RPW rows][FA_KEYS]
        int h = blockIdx.y, first = tiles[2 * blockIdx.x], count = tiles[2 * blockIdx.x + 1];
        int kvh = h / (heads / kvHeads), kvDim = kvHeads * hd, dpl = hd / 32;
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
        const int* table = tables + row_table[first];
        for (int i = threadIdx.x; i < FA_ROWS * hd; i += blockDim.x) {
            int r = i / hd;
            Qs[i] = r < count ? q[((long)(first + r) * heads + h) * hd + i % hd] * scale : 0.f;
        }
        int nMax = 0;
        for (int r = 0; r < count; r++) nMax = max(nMax, row_pos[first + r] + 1);
        int pos[FA_RPW];
        float m[FA_RPW], l[FA_RPW], o[FA_RPW][4];
        #pragma unroll
        for (int rr = 0; rr < FA_RPW; rr++) {
            int r = warp * FA_RPW + rr;
            pos[rr] = r < count ? row_pos[first + r] : -1;
            m[rr] = NEG_INF; l[rr] = 0.f;
            #pragma unroll
            for (int k = 0; k < 4; k++) o[rr][k] = 0.f;
        }
        float* P = Ps + warp * FA_RPW * FA_KEYS;
        for (int j0 = 0; j0 < nMax; j0 += FA_KEYS) {
            __syncthreads();
            for (int i = threadIdx.x; i < FA_KEYS * hd; i += blockDim.x) {
                int jj = i / hd, d = i % hd, j = j0 + jj;
                float kk = 0.f, vv = 0.f;
                if (j < nMax) {
                    long at = (((long)table[j / bs] * layers + layer) * bs + j % bs) * kvDim + kvh * hd + d;
                    kk = kc[at]; vv = vc[at];
                }
                Kt[d * FA_KT + jj] = kk;
                Vs[jj * hd + d] = vv;
            }
            __syncthreads();
            float s[FA_RPW][2];
            #pragma unroll
            for (int rr = 0; rr < FA_RPW; rr++) { s[rr][0] = 0.f; s[rr][1] = 0.f; }
            for (int d = 0; d < hd; d++) {
                float k0 = Kt[d * FA_KT + lane], k1 = Kt[d * FA_KT + lane + 32];
                #pragma unroll
                for (int rr = 0; rr < FA_RPW; rr++) {
                    float qd = Qs[(warp * FA_RPW + rr) * hd + d];
                    s[rr][0] = fmaf(qd, k0, s[rr][0]);
                    s[rr][1] = fmaf(qd, k1, s[rr][1]);
                }
            }
            #pragma unroll
            for (int rr = 0; rr < FA_RPW; rr++) {
                if (pos[rr] < j0) continue;  // no key of this chunk for the row (or no row): uniform across the warp
                float s0 = j0 + lane <= pos[rr] ? s[rr][0] : NEG_INF;
                float s1 = j0 + lane + 32 <= pos[rr] ? s[rr][1] : NEG_INF;
                float cm = fmaxf(s0, s1);
                #pragma unroll
                for (int off = 16; off > 0; off >>= 1) cm = fmaxf(cm, __shfl_xor_sync(0xffffffff, cm, off));
                float mn = fmaxf(m[rr], cm);
                float c = expf(m[rr] - mn), p0 = expf(s0 - mn), p1 = expf(s1 - mn);
                float ps = p0 + p1;
                #pragma unroll
                for (int off = 16; off > 0; off >>= 1) ps += __shfl_xor_sync(0xffffffff, ps, off);
                l[rr] = l[rr] * c + ps;
                m[rr] = mn;
                #pragma unroll
                for (int k = 0; k < 4; k++) o[rr][k] *= c;
                P[rr * FA_KEYS + lane] = p0;
                P[rr * FA_KEYS + lane + 32] = p1;
            }
            __syncwarp();
            int jEnd = min(FA_KEYS, nMax - j0);
            for (int jj = 0; jj < jEnd; jj++) {
                float vv[4];
                #pragma unroll
                for (int k = 0; k < 4; k++) vv[k] = k < dpl ? Vs[jj * hd + lane + 32 * k] : 0.f;
                #pragma unroll
                for (int rr = 0; rr < FA_RPW; rr++) {
                    if (pos[rr] < j0) continue;
                    float p = P[rr * FA_KEYS + jj];
                    #pragma unroll
                    for (int k = 0; k < 4; k++) o[rr][k] = fmaf(p, vv[k], o[rr][k]);
                }
            }
            __syncwarp();
        }
        #pragma unroll
        for (int rr = 0; rr < FA_RPW; rr++) {
            int r = warp * FA_RPW + rr;
            if (r >= count) continue;
            #pragma unroll
            for (int k = 0; k < 4; k++) {
                if (k < dpl) out[((long)(first + r) * heads + h) * hd + lane + 32 * k] = to_gemm(o[rr][k] / l[rr]);
            }
        }
    }
    }  // extern "C"

    """#
}
