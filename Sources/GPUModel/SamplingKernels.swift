extension GPUKernels {
    /// Sampling on the device (`draw_rows`): temperature, top-k, min-p, top-p and the draw, so that a sampled row sends
    /// one int to the host instead of its vocabulary's logits. Layout of its parameters: `GPUDraw`.
    static let samplingSource = #"""
    // One block per drawn row. The host's sampler (Sources/Engine/Sampler.swift) defines what is drawn: logits scaled by
    // 1/temperature; top-k keeps the k largest (ties to the lower id), min-p the weights exp(s - max) of at least
    // min_p, top-p the most likely of those up to the first whose cumulative probability reaches top_p; a draw at
    // `uniform` of the kept weights walks them from the most likely down when top-k or top-p truncated them, else in id
    // order. Here weights are fixed-point integers (exp(s - max) · 2^40 to the nearest integer) so that every sum is
    // exact and the token does not depend on the order in which threads add: the same logits and uniform give the same
    // token on every run. Ranks are found by radix selection over order-preserving keys of the scaled logits (8 bits a
    // pass, a 256-bin histogram per pass, lanes of a warp in the same bin adding as one), ties by an id-ordered scan.
    #define DRAW_THREADS 1024
    #define DRAW_WARPS (DRAW_THREADS / 32)
    #define DRAW_ONE (1ull << 40)

    // GPUDraw's layout (32 bytes a row).
    struct DrawParams {
        float inverseTemperature, topP, minP, uniform;
        int topK, row, out, unused;  // out: where the token goes (the row, in a step)
    };

    // Order-preserving key of a scaled logit: larger value, larger key; NaN 0 (below everything, as the host ranks
    // it); -0 as +0 (they compare equal on the host).
    __device__ __forceinline__ unsigned draw_key(float s) {
        if (s != s) return 0u;
        unsigned u = s == 0.f ? 0u : __float_as_uint(s);
        return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    }
    __device__ __forceinline__ float draw_value(unsigned key) {
        return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
    }

    // A row as the selections see it: each element's key, and its weight within the current candidate set (0 when
    // the element is not a candidate). counts: every element weighs 1 (top-k ranks by count).
    struct DrawRow {
        const float* logits;
        float inverseTemperature, largest, minP;
        unsigned kKey; int kId;  // top-k: candidates rank at or above (kKey, kId); kKey 0 and kId V: all
        bool counts;
        __device__ __forceinline__ unsigned key(int i) const { return draw_key(logits[i] * inverseTemperature); }
        __device__ __forceinline__ unsigned long long weight(int i, unsigned k) const {
            if (counts) return 1ull;
            if (k < kKey || (k == kKey && i > kId) || k == 0u) return 0ull;
            float w = expf(draw_value(k) - largest);
            if (w < minP) return 0ull;
            return __float2ull_rn(w * (float)DRAW_ONE);  // to nearest: no drift over a vocabulary of sums
        }
    };

    // Σ v over the block, the same in every thread (integers: no order to fix).
    __device__ unsigned long long draw_block_sum(unsigned long long v, unsigned long long* shared) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        __syncthreads();
        if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = v;
        __syncthreads();
        v = shared[threadIdx.x & 31];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        return v;
    }
    __device__ unsigned draw_block_max(unsigned v, unsigned long long* shared) {
        for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
        __syncthreads();
        if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = v;
        __syncthreads();
        v = (unsigned)shared[threadIdx.x & 31];
        for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
        return v;
    }
    // The block's exclusive prefix sum of v in thread order; total: the sum.
    __device__ unsigned long long draw_block_scan(unsigned long long v, unsigned long long* shared, unsigned long long& total) {
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        unsigned long long inclusive = v;
        for (int o = 1; o < 32; o <<= 1) {
            unsigned long long t = __shfl_up_sync(0xffffffffu, inclusive, o);
            if (lane >= o) inclusive += t;
        }
        __syncthreads();
        if (lane == 31) shared[warp] = inclusive;
        __syncthreads();
        unsigned long long warpSum = shared[lane], warpsThrough = warpSum;
        for (int o = 1; o < 32; o <<= 1) {
            unsigned long long t = __shfl_up_sync(0xffffffffu, warpsThrough, o);
            if (lane >= o) warpsThrough += t;
        }
        unsigned long long before = __shfl_sync(0xffffffffu, warpsThrough - warpSum, warp);
        total = __shfl_sync(0xffffffffu, warpsThrough, DRAW_WARPS - 1);
        return before + inclusive - v;
    }

    // The element holding position pos of the weights walked in id order, among those with key `only` (any key when
    // `filter` is false): returns its id, -1 when pos is past the end; before: the weight walked before it. slot and
    // slotBefore: shared memory for the answer.
    __device__ int draw_find_by_id(const DrawRow& row, int V, bool filter, unsigned only, unsigned long long pos,
                                   unsigned long long* shared, int* slot, unsigned long long* slotBefore,
                                   unsigned long long& before) {
        int per = (V + DRAW_THREADS - 1) / DRAW_THREADS, lo = min(V, (int)threadIdx.x * per), hi = min(V, lo + per);
        unsigned long long sum = 0ull;
        for (int i = lo; i < hi; i++) {
            unsigned k = row.key(i);
            if (!filter || k == only) sum += row.weight(i, k);
        }
        if (threadIdx.x == 0) *slot = -1;
        unsigned long long total, walked = draw_block_scan(sum, shared, total);  // synchronizes after the reset
        if (walked <= pos && pos < walked + sum) {
            for (int i = lo; i < hi; i++) {
                unsigned k = row.key(i);
                unsigned long long w = !filter || k == only ? row.weight(i, k) : 0ull;
                if (pos < walked + w) {
                    *slot = i;
                    *slotBefore = walked;
                    break;
                }
                walked += w;
            }
        }
        __syncthreads();
        int id = *slot;
        before = *slotBefore;
        __syncthreads();  // read by all before the slots are reused
        return id;
    }

    // The element holding position pos of the weights walked from the largest key down (equal keys by id): returns
    // its id, -1 when pos is past the end; before: the weight walked before it; key: its key. Four passes of 8 key
    // bits, each a histogram of the candidates that match the bits found so far, then the equal keys in id order.
    __device__ int draw_find_by_rank(const DrawRow& row, int V, unsigned long long pos, unsigned long long* hist,
                                     unsigned long long* shared, int* slot, unsigned long long* slotBefore,
                                     unsigned long long& before, unsigned& key) {
        unsigned prefix = 0u, mask = 0u;
        unsigned long long above = 0ull;  // the weight of the keys above the bits found so far
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (int b = threadIdx.x; b < 256; b += DRAW_THREADS) hist[b] = 0ull;
            __syncthreads();
            for (int base = 0; base < V; base += DRAW_THREADS) {
                int i = base + threadIdx.x;
                unsigned long long w = 0ull;
                int bin = 256;
                if (i < V) {
                    unsigned k = row.key(i);
                    if ((k & mask) == prefix) {
                        w = row.weight(i, k);
                        if (w) bin = (k >> shift) & 255;
                    }
                }
    #if __CUDA_ARCH__ >= 800
                // Lanes in the same bin add as one (most logits share the first pass's few bins): a weight of at
                // most 2^40 in parts of 20 and 21 bits, whose sums over 32 lanes fit 32 bits.
                unsigned peers = __match_any_sync(0xffffffffu, (unsigned)bin);
                if (bin < 256) {
                    unsigned low = __reduce_add_sync(peers, (unsigned)(w & 0xfffffull));
                    unsigned high = __reduce_add_sync(peers, (unsigned)(w >> 20));
                    if ((int)(threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(hist + bin, ((unsigned long long)high << 20) + low);
                }
    #else
                if (bin < 256) atomicAdd(hist + bin, w);
    #endif
            }
            __syncthreads();
            if (threadIdx.x < 32) {  // the bin holding pos, bins walked from 255 down, eight a lane
                int lane = threadIdx.x;
                unsigned long long sum = 0ull;
                for (int j = 0; j < 8; j++) sum += hist[255 - (lane * 8 + j)];
                unsigned long long inclusive = sum;
                for (int o = 1; o < 32; o <<= 1) {
                    unsigned long long t = __shfl_up_sync(0xffffffffu, inclusive, o);
                    if (lane >= o) inclusive += t;
                }
                unsigned long long walked = above + inclusive - sum;
                if (lane == 0) *slot = -1;
                __syncwarp();
                if (walked <= pos && pos < walked + sum) {
                    for (int j = 0; j < 8; j++) {
                        unsigned long long w = hist[255 - (lane * 8 + j)];
                        if (pos < walked + w) {
                            *slot = 255 - (lane * 8 + j);
                            *slotBefore = walked;
                            break;
                        }
                        walked += w;
                    }
                }
            }
            __syncthreads();
            int bin = *slot;
            unsigned long long walked = *slotBefore;
            __syncthreads();  // read by all before the slots are reused
            if (bin < 0) return -1;
            prefix |= (unsigned)bin << shift;
            mask |= 255u << shift;
            above = walked;
        }
        key = prefix;
        int id = draw_find_by_id(row, V, true, prefix, pos - above, shared, slot, slotBefore, before);
        before += above;
        return id;
    }

    extern "C" __global__ void __launch_bounds__(DRAW_THREADS) draw_rows(const float* logits, const DrawParams* params, int V, int* out) {
        pdl_wait();
        pdl_trigger();
        __shared__ unsigned long long hist[256], shared[DRAW_WARPS], slotBefore;
        __shared__ int slot;
        DrawParams p = params[blockIdx.x];
        DrawRow row = {logits + (long)p.row * V, p.inverseTemperature, 0.f, p.minP, 0u, V, false};
        // The largest key; with no finite largest value there is no distribution: the first element of that key.
        unsigned top = 0u;
        for (int i = threadIdx.x; i < V; i += DRAW_THREADS) top = max(top, row.key(i));
        top = draw_block_max(top, shared);
        row.largest = draw_value(top);
        if (top == 0u || (__float_as_uint(row.largest) & 0x7fffffffu) == 0x7f800000u) {  // NaN or ±inf
            if (threadIdx.x == 0) {
                int i = 0;
                while (i < V - 1 && row.key(i) != top) i++;
                out[p.out] = i;
            }
            return;
        }
        unsigned long long before;
        unsigned key;
        bool truncated = false;
        if (p.topK > 0 && p.topK < V) {  // the k-th element by rank bounds the candidates
            row.counts = true;
            int kth = draw_find_by_rank(row, V, (unsigned long long)(p.topK - 1), hist, shared, &slot, &slotBefore, before, key);
            row.counts = false;
            row.kKey = key;
            row.kId = kth;
            truncated = true;
        }
        unsigned long long sum = 0ull;
        for (int i = threadIdx.x; i < V; i += DRAW_THREADS) sum += row.weight(i, row.key(i));
        unsigned long long mass = draw_block_sum(sum, shared);
        if (p.topP < 1.f) {  // the nucleus ends at the element that brings the walked weight to top_p of the mass
            double need = ceil((double)p.topP * (double)mass);
            unsigned long long at = need < 1.0 ? 0ull : (unsigned long long)need - 1ull;
            if (at >= mass) at = mass - 1ull;
            int last = draw_find_by_rank(row, V, at, hist, shared, &slot, &slotBefore, before, key);
            if (last >= 0) mass = before + row.weight(last, key);
            truncated = true;
        }
        // uniform < 1 with 24 bits: pos = ⌊uniform · mass⌋ < mass.
        unsigned long long u = (unsigned long long)(p.uniform * 16777216.f) << 40;
        unsigned long long pos = __umul64hi(mass, u);
        int token = truncated ? draw_find_by_rank(row, V, pos, hist, shared, &slot, &slotBefore, before, key)
                              : draw_find_by_id(row, V, false, 0u, pos, shared, &slot, &slotBefore, before);
        if (threadIdx.x == 0) out[p.out] = token >= 0 ? token : 0;
    }

    """#
}
