extension GPUKernels {
    /// The default mode's decode attention: one launch of GQA split attention a layer (also run by the persistent
    /// decode kernel's blocks). Uses ATT_SPLIT and merge_split from `attentionSource`; the default mode's prefill
    /// attention is `tensorCoreAttentionSource` (TensorCoreAttentionKernels.swift).
    static let decodeAttentionSource = #"""
    // Decode attention in the default mode: one block per (row, K/V head, split of ATT_SPLIT keys) for all G query heads
    // of that K/V head. The split's K and V rows are staged in shared memory with one round of coalesced loads (not a
    // dependent load per key), then scores (one thread per head and key), softmax (one warp per head) and P·V (one
    // thread per head and dimension) run in parallel. Partials go to [row][head][split][hd + 2] as attention_split's;
    // the last block of a (row, K/V head) to finish (a counter, reset by that block) merges them in split order and
    // writes the output (and its low half at lo, see store_gemm_input): one launch per layer. Dynamic shared memory:
    // GPULlama.decodeAttentionSharedBytes.
    // Threads of one decode-attention block: 256, whether a kernel block (attention_decode) or a quarter of one (the
    // persistent decode kernel's sub-blocks, which synchronize with named barriers).
    #define DECODE_ATT_THREADS 256
    // K rows in shared memory are padded by 4 floats: 16-byte aligned (float4 copies and reads), and eight consecutive
    // rows read as float4 fall in distinct banks.
    #define ATT_KPAD 4
    struct BlockSync { __device__ __forceinline__ void operator()() const { __syncthreads(); } };
    // Named barrier `id` (1..15; 0 is __syncthreads) over DECODE_ATT_THREADS threads.
    struct GroupSync {
        int id;
        __device__ __forceinline__ void operator()() const { asm volatile("bar.sync %0, 256;" :: "r"(id) : "memory"); }
    };

    // Where the keys of split `split` of row t's K/V head kvh live, as float4 items (item i: key j0 + i / (hd / 4),
    // dims (i % (hd / 4)) · 4 ...): in the paged cache (at) and in the decode-attention block's Ks and Vs (k, v; see
    // decode_attention_block).
    struct DecodeSplitKV {
        float* Ks; float* Vs; const int* table; int j0, kvh, layer, layers, bs, kvDim, hd;
        __device__ __forceinline__ DecodeSplitKV(float* dsm, int t, int kvh_, int split, const int* row_table, const int* tables, int layer_,
                                                 int layers_, int bs_, int kvHeads, int hd_)
            : Ks(dsm), Vs(dsm + ATT_SPLIT * (hd_ + ATT_KPAD)), table(tables + row_table[t]), j0(split * ATT_SPLIT), kvh(kvh_), layer(layer_),
              layers(layers_), bs(bs_), kvDim(kvHeads * hd_), hd(hd_) {}
        __device__ __forceinline__ long at(int i) const {
            int j = j0 + i / (hd / 4);
            return (((long)table[j / bs] * layers + layer) * bs + j % bs) * kvDim + kvh * hd + (i % (hd / 4)) * 4;
        }
        __device__ __forceinline__ float* k(int i) const { return Ks + i / (hd / 4) * (hd + ATT_KPAD) + (i % (hd / 4)) * 4; }
        __device__ __forceinline__ float* v(int i) const { return Vs + i / (hd / 4) * hd + (i % (hd / 4)) * 4; }
    };

    // Copies the split's keys [from, to) (relative to its first) into Ks and Vs, read around L1. Four float4 of K and of
    // V per thread in flight at once: the block-table lookups, then the loads they address, are one round trip each
    // instead of one per iteration (a split is only a few microseconds of work). Plain loads, not cp.async: the
    // persistent kernel has weight copies of its own in flight, which a cp.async wait here would wait for too.
    __device__ __forceinline__ void decode_attention_stage(DecodeSplitKV kv, int tid, int from, int to, const float* kc, const float* vc) {
        int hd = kv.hd;
        for (int i0 = from * hd / 4; i0 < to * hd / 4; i0 += 4 * DECODE_ATT_THREADS) {
            float4 k4[4], v4[4];
            #pragma unroll
            for (int u = 0; u < 4; u++) {
                int i = i0 + u * DECODE_ATT_THREADS + tid;
                if (i < to * hd / 4) {
                    long at = kv.at(i);
                    k4[u] = __ldcg((const float4*)(kc + at));
                    v4[u] = __ldcg((const float4*)(vc + at));
                }
            }
            #pragma unroll
            for (int u = 0; u < 4; u++) {
                int i = i0 + u * DECODE_ATT_THREADS + tid;
                if (i < to * hd / 4) {
                    *(float4*)kv.k(i) = k4[u];
                    *(float4*)kv.v(i) = v4[u];
                }
            }
        }
    }

    // decode_attention_stage's copies as cp.async, one commit group, nothing waited for: the persistent kernel starts
    // them while the grid meets and waits (cp.async.wait_group) once its next GEMV's first copies are younger.
    __device__ __noinline__ void decode_attention_stage_async(DecodeSplitKV kv, int tid, int from, int to, const float* kc, const float* vc) {
        for (int i = from * kv.hd / 4 + tid; i < to * kv.hd / 4; i += DECODE_ATT_THREADS) {
            long at = kv.at(i);
            cp_async16(kv.k(i), kc + at, true);
            cp_async16(kv.v(i), vc + at, true);
        }
        cp_async_commit();
    }

    // The keys of a split that precede row t's own position: in the cache before the step starts, so they can be
    // staged before the step's own K/V row is written (the persistent kernel stages them while the grid meets).
    __device__ __forceinline__ int decode_attention_past_keys(int t, int split, const int* row_pos) {
        return max(0, min(ATT_SPLIT, row_pos[t] - split * ATT_SPLIT));
    }

    // One (row t, K/V head kvh, split) block of decode attention, run by DECODE_ATT_THREADS threads (tid) that
    // synchronize with sync(); dsm: GPULlama.decodeAttentionSharedBytes. Inputs written by the step itself (q, the
    // new K/V row) are read around L1 (__ldcg), which the persistent kernel needs: its blocks read what other
    // SMs wrote since the last grid barrier. `staged`: the split's first keys already in Ks and Vs
    // (decode_attention_stage; at most decode_attention_past_keys, so the row's own key is always copied here).
    // AsyncStage: the keys are copied with cp.async and waited for here (attention_decode, which has no other copies
    // in flight: no registers are held for them, so more blocks fit an SM), else with plain loads (the persistent
    // kernel, whose weight copies a cp.async wait would also wait for). Merge = false: the partials only (the persistent
    // kernel's PD_MERGE_ALL, where every block merges them after the grid barrier that follows).
    template <class Sync, bool AsyncStage, bool Merge = true>
    __device__ __noinline__ void decode_attention_block(const Sync& sync, int tid, float* dsm, int t, int kvh, int split, const float* q, const float* kc,
                                           const float* vc, float* partials, int* counters, gemm_t* out, const int* row_pos,
                                           const int* row_table, const int* tables, int layer, int layers, int bs, int heads,
                                           int kvHeads, int hd, float scale, int max_splits, long lo, int staged) {
        int G = heads / kvHeads;
        int n = row_pos[t] + 1, j0 = split * ATT_SPLIT;
        if (j0 >= n) return;
        int count = min(ATT_SPLIT, n - j0), splits = (n + ATT_SPLIT - 1) / ATT_SPLIT;
        float* Ks = dsm;                              // [ATT_SPLIT][hd + ATT_KPAD]
        float* Vs = Ks + ATT_SPLIT * (hd + ATT_KPAD); // [ATT_SPLIT][hd]
        float* Qs = Vs + ATT_SPLIT * hd;              // [G][hd]
        float* P = Qs + G * hd;                       // [G][ATT_SPLIT]
        float* ML = P + G * ATT_SPLIT;                // [G][2]: max, sum
        int* last = (int*)(ML + 2 * G);               // whether this block merges
        int warp = tid >> 5, lane = tid & 31;
        const float* qt = q + ((long)t * heads + kvh * G) * hd;
        DecodeSplitKV kv(dsm, t, kvh, split, row_table, tables, layer, layers, bs, kvHeads, hd);
        if (AsyncStage) {
            for (int i = tid; i < G * hd; i += DECODE_ATT_THREADS) Qs[i] = __ldcg(qt + i);
            decode_attention_stage_async(kv, tid, staged, count, kc, vc);
            cp_async_wait<0>();
        } else {
            // q's first values are loaded into registers while the keys' loads are issued: one round trip, not two
            // (the persistent kernel, right after the grid barrier, when the split's older keys are already staged).
            float qr[2];
            #pragma unroll
            for (int u = 0; u < 2; u++) if (tid + u * DECODE_ATT_THREADS < G * hd) qr[u] = __ldcg(qt + tid + u * DECODE_ATT_THREADS);
            for (int i = tid + 2 * DECODE_ATT_THREADS; i < G * hd; i += DECODE_ATT_THREADS) Qs[i] = __ldcg(qt + i);
            decode_attention_stage(kv, tid, staged, count, kc, vc);
            #pragma unroll
            for (int u = 0; u < 2; u++) if (tid + u * DECODE_ATT_THREADS < G * hd) Qs[tid + u * DECODE_ATT_THREADS] = qr[u];
        }
        sync();
        // Scores: a warp shares its head (Q read as a broadcast) and reads 32 K rows, four dims per load; the products
        // are added in dim order as fused multiply-adds.
        for (int i = tid; i < G * ATT_SPLIT; i += DECODE_ATT_THREADS) {
            int g = i / ATT_SPLIT, jj = i % ATT_SPLIT;
            float s = NEG_INF;
            if (jj < count) {
                const float4* qg = (const float4*)(Qs + g * hd);
                const float4* kj = (const float4*)(Ks + jj * (hd + ATT_KPAD));
                s = 0.f;
                #pragma unroll 4
                for (int d4 = 0; d4 < hd / 4; d4++) {
                    float4 a = qg[d4], b = kj[d4];
                    s = fmaf(a.x, b.x, s); s = fmaf(a.y, b.y, s); s = fmaf(a.z, b.z, s); s = fmaf(a.w, b.w, s);
                }
                s *= scale;
            }
            P[i] = s;
        }
        sync();
        for (int g = warp; g < G; g += DECODE_ATT_THREADS >> 5) {
            float a = P[g * ATT_SPLIT + lane], b = P[g * ATT_SPLIT + lane + 32];
            float m = fmaxf(a, b);
            for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, o));
            a = expf(a - m); b = expf(b - m);
            P[g * ATT_SPLIT + lane] = a; P[g * ATT_SPLIT + lane + 32] = b;
            float l = a + b;
            for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffff, l, o);
            if (lane == 0) { ML[2 * g] = m; ML[2 * g + 1] = l; }
        }
        sync();
        // P·V: a warp shares its head (P read as a broadcast, four keys per load), keys added in order.
        for (int i = tid; i < G * hd; i += DECODE_ATT_THREADS) {
            int g = i / hd, d = i % hd;
            const float* pg = P + g * ATT_SPLIT;
            float o = 0.f;
            int jj = 0;
            #pragma unroll 2
            for (; jj + 4 <= count; jj += 4) {
                float4 p = *(const float4*)(pg + jj);
                o = fmaf(p.x, Vs[jj * hd + d], o);
                o = fmaf(p.y, Vs[(jj + 1) * hd + d], o);
                o = fmaf(p.z, Vs[(jj + 2) * hd + d], o);
                o = fmaf(p.w, Vs[(jj + 3) * hd + d], o);
            }
            for (; jj < count; jj++) o = fmaf(pg[jj], Vs[jj * hd + d], o);
            float* part = partials + (((long)t * heads + kvh * G + g) * max_splits + split) * (hd + 2);
            part[d] = o;
            if (d == 0) { part[hd] = ML[2 * g]; part[hd + 1] = ML[2 * g + 1]; }
        }
        if (!Merge) return;
        // The last block of this (row, K/V head) merges every split's partials.
        __threadfence();
        sync();
        if (tid == 0) {
            int* counter = counters + t * kvHeads + kvh;
            *last = atomicAdd(counter, 1) == splits - 1;
            if (*last) *counter = 0;
        }
        sync();
        if (!*last) return;
        __threadfence();
        for (int i = tid; i < G * hd; i += DECODE_ATT_THREADS) {
            int g = i / hd, d = i % hd, h = kvh * G + g;
            const float* p = partials + ((long)t * heads + h) * max_splits * (hd + 2);
            float M = NEG_INF, L = 0.f, O = 0.f;
            // Eight splits' partials loaded at once (one round trip to L2 instead of one per split), merged in order.
            for (int s0 = 0; s0 < splits; s0 += 8) {
                float m[8], l[8], o[8];
                #pragma unroll
                for (int u = 0; u < 8; u++) {
                    const float* ps = p + (s0 + u) * (hd + 2);
                    if (s0 + u < splits) { m[u] = __ldcg(ps + hd); l[u] = __ldcg(ps + hd + 1); o[u] = __ldcg(ps + d); }
                }
                #pragma unroll
                for (int u = 0; u < 8; u++) if (s0 + u < splits) merge_split(M, L, O, m[u], l[u], o[u]);
            }
            store_gemm_input(out, ((long)t * heads + h) * hd + d, lo, O / L);
        }
    }

    // Decode attention in the default mode: one block per (row, K/V head, split); see decode_attention_block.
    extern "C" __global__ void __launch_bounds__(DECODE_ATT_THREADS, 4) attention_decode(const float* q, const float* kc, const float* vc, float* partials, int* counters, gemm_t* out,
                                                const int* row_pos, const int* row_table, const int* tables, int layer, int layers, int bs,
                                                int heads, int kvHeads, int hd, float scale, int max_splits, long lo) {
        extern __shared__ float dsm[];
        pdl_wait();
        pdl_trigger();
        decode_attention_block<BlockSync, true>(BlockSync(), threadIdx.x, dsm, blockIdx.x, blockIdx.y, blockIdx.z, q, kc, vc, partials, counters, out,
                               row_pos, row_table, tables, layer, layers, bs, heads, kvHeads, hd, scale, max_splits, lo, 0);
    }

    """#
}
