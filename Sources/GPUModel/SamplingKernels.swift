extension GPUKernels {
    /// Sampling on the device (`draw_rows`): penalties, temperature, top-k, min-p, top-p and the draw, so that a row sends
    /// one int to the host instead of its vocabulary's logits. Layout of its parameters: `GPUDraw`.
    static let samplingSource = drawRowSource + drawGroupSource + drawSelectionSource

    /// What is drawn and how a row looks to the selections: parameters, penalties, keys, weights.
    static let drawRowSource = #"""
    // A group of blocks draws a row (gridDim.x blocks to a group; group y draws rows y, y + gridDim.y, ...), each block
    // holding its contiguous slice of the row's keys in shared memory so that every pass below reads the logits once
    // and the whole GPU works on a lone row. The blocks of a group meet at barriers through global words and decide
    // alike from the same integer sums, so they take the same branches. The host's sampler (Sources/Engine/Sampler.swift)
    // defines what is drawn: logits scaled by 1/temperature; top-k keeps the k largest (ties to the lower id), min-p the
    // weights exp(s - max) of at least min_p, top-p the most likely of those up to the first whose cumulative
    // probability reaches top_p; a draw at `uniform` of the kept weights walks them from the most likely down when top-k
    // or top-p truncated them, else in id order. Here weights are fixed-point integers (exp(s - max) · 2^40 to the
    // nearest integer) so that every sum is exact and the token does not depend on the order in which threads or
    // blocks add: the same logits and uniform give the same token on every run and every launch shape. Ranks are found
    // by radix selection over order-preserving keys of the scaled logits (8 bits a pass, a 256-bin histogram per pass),
    // ties by an id-ordered scan.
    #define DRAW_THREADS 512
    #define DRAW_WARPS (DRAW_THREADS / 32)
    #define DRAW_BINS 256
    #define DRAW_ONE (1ull << 40)

    // GPUDraw's layout (64 bytes a row). out: where the token goes (the row, in a step); penalties: entries
    // [penaltyStart, penaltyStart + penaltyCount) of the launch's (token, count in the output) pairs, one per distinct
    // token of the request's prompt and output.
    // topLogprobs: -1 for none, else n (log-probabilities of the drawn token and of the n most likely, into slot
    // logprobSlot of the launch's logprob buffer: DRAW_LOGPROB_WORDS floats each, the drawn token's, the count of
    // pairs as an int, then (id as int, log-probability) pairs in id order).
    struct DrawParams {
        float inverseTemperature, topP, minP, uniform;
        int topK, row, out, penaltyCount;
        float repetition, frequency, presence;
        int penaltyStart;
        int topLogprobs, logprobSlot, unused0, unused1;
    };
    #define DRAW_LOGPROB_WORDS 48

    // A token's penalized logit, with the host sampler's arithmetic in its order (no contraction: --fmad=false).
    __device__ __forceinline__ float draw_penalized(float v, const DrawParams& p, int count) {
        if (p.repetition != 1.f) v = v > 0.f ? v / p.repetition : v * p.repetition;
        if (count > 0 && (p.frequency != 0.f || p.presence != 0.f)) v -= p.frequency * (float)count + p.presence;
        return v;
    }

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

    // A row as the selections see it: the block's slice [lo, hi) of keys, and each element's weight within the
    // current candidate set (0 when the element is not a candidate). counts: every element weighs 1 (top-k ranks by
    // count).
    struct DrawRow {
        const unsigned* keys;  // keys[i - lo]
        int lo, hi;
        float largest, minP;
        unsigned kKey; int kId;  // top-k: candidates rank at or above (kKey, kId); kKey 0 and kId V: all
        bool counts;
        __device__ __forceinline__ unsigned key(int i) const { return keys[i - lo]; }
        __device__ __forceinline__ unsigned long long weight(int i, unsigned k) const {
            if (counts) return 1ull;
            if (k < kKey || (k == kKey && i > kId) || k == 0u) return 0ull;
            float w = expf(draw_value(k) - largest);
            if (w < minP) return 0ull;
            return __float2ull_rn(w * (float)DRAW_ONE);  // to nearest: no drift over a vocabulary of sums
        }
    };

    """#

    /// The row's selections: where a walk stops, the group's histograms, the walks by id and by rank, and draw_rows.
    static let drawSelectionSource = #"""
    // Where a walk stops: at `pos`, or at a fraction of the walked mass once the first pass has summed it: the top-p
    // cut (the element that brings the walked weight to ⌈top_p · mass⌉) or the draw (⌊uniform · mass⌋, uniform < 1
    // with 24 bits).
    struct DrawAt {
        int rule;  // 0: pos; 1: the top-p cut at `fraction`; 2: the draw at uniform `fraction`
        unsigned long long pos;
        float fraction;
        __device__ unsigned long long resolve(unsigned long long mass) const {
            if (rule == 1) {
                double need = ceil((double)fraction * (double)mass);
                unsigned long long at = need < 1.0 ? 0ull : (unsigned long long)need - 1ull;
                return at >= mass ? mass - 1ull : at;
            }
            if (rule == 2) return __umul64hi(mass, (unsigned long long)(fraction * 16777216.f) << 40);
            return pos;
        }
    };

    // hist[bin] += w for each lane of the warp with bin < DRAW_BINS (w ≤ 2^40; w = 0 where bin is DRAW_BINS). Lanes in
    // one bin add as one (in parts of 20 and 21 bits, whose sums over 32 lanes fit 32 bits) and one lane adds their sum:
    // most logits share the first pass's few bins, and 32 lanes adding to one shared word wait for each other. Warps
    // without a candidate (most of them once the first bits are fixed) skip it. (A path without match_any for warps
    // whose candidates share one bin measured no faster on the H100: 101 against 99 µs a lone draw.)
    __device__ __forceinline__ void draw_histogram_add(unsigned long long* hist, int bin, unsigned long long w) {
        if (!__any_sync(0xffffffffu, bin < DRAW_BINS)) return;
    #if __CUDA_ARCH__ >= 800
        unsigned peers = __match_any_sync(0xffffffffu, (unsigned)bin);
        if (bin < DRAW_BINS) {
            unsigned low = __reduce_add_sync(peers, (unsigned)(w & 0xfffffull));
            unsigned high = __reduce_add_sync(peers, (unsigned)(w >> 20));
            if ((int)(threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(hist + bin, ((unsigned long long)high << 20) + low);
        }
    #else
        if (bin < DRAW_BINS) atomicAdd(hist + bin, w);
    #endif
    }

    // The group's histogram in `hist` of the candidates' weights (counts when row.counts) by bin (key >> shift) & 255,
    // among the keys that match `prefix` under `mask`.
    __device__ void draw_histogram(DrawGroup& g, const DrawRow& row, unsigned prefix, unsigned mask, int shift, unsigned long long* hist) {
        for (int b = threadIdx.x; b < DRAW_BINS; b += DRAW_THREADS) hist[b] = 0ull;
        __syncthreads();
        for (int base = row.lo; base < row.hi; base += DRAW_THREADS) {
            int i = base + threadIdx.x;
            unsigned long long w = 0ull;
            int bin = DRAW_BINS;
            if (i < row.hi) {
                unsigned k = row.key(i);
                if ((k & mask) == prefix) {
                    w = row.weight(i, k);
                    if (w) bin = (k >> shift) & 255;
                }
            }
            draw_histogram_add(hist, bin, w);
        }
        __syncthreads();
        if (g.slices == 1) return;
        unsigned long long* buffer = g.next_partials();
        for (int b = threadIdx.x; b < DRAW_BINS; b += DRAW_THREADS) buffer[g.slice * DRAW_BINS + b] = hist[b];
        g.sync();
        for (int b = threadIdx.x; b < DRAW_BINS; b += DRAW_THREADS) {
            unsigned long long sum = 0ull;
    #pragma unroll 8
            for (int s = 0; s < g.slices; s++) sum += __ldcg(buffer + s * DRAW_BINS + b);  // 8 loads in flight, not 1
            hist[b] = sum;
        }
        __syncthreads();
    }

    // The element holding position `at` of the weights walked in id order, among those with key `only` (any key when
    // `filter` is false). Returns its id in the block that holds it, -1 in every block when the position is past the
    // end, and -2 in the other blocks, or, when `publish`, its id in every block (a barrier more). before: the weight
    // walked before it (in the blocks that return its id). slot and slotBefore: shared memory for the answer.
    __device__ int draw_find_by_id(DrawGroup& g, const DrawRow& row, bool filter, unsigned only, DrawAt at, bool publish,
                                   unsigned long long* shared, int* slot, unsigned long long* slotBefore, unsigned long long& before) {
        int n = row.hi - row.lo, per = (n + DRAW_THREADS - 1) / DRAW_THREADS;
        int lo = row.lo + min(n, (int)threadIdx.x * per), hi = min(row.hi, lo + per);
        unsigned long long sum = 0ull;
        for (int i = lo; i < hi; i++) {
            unsigned k = row.key(i);
            if (!filter || k == only) sum += row.weight(i, k);
        }
        if (threadIdx.x == 0) *slot = -2;
        unsigned long long blockTotal, walked = draw_block_scan(sum, shared, blockTotal);  // synchronizes after the reset
        unsigned long long earlier, total = draw_group_sum(g, blockTotal, shared, earlier);
        unsigned long long pos = at.resolve(total);
        if (pos >= total) return -1;
        walked += earlier;
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
        if (!publish || g.slices == 1) return id;
        unsigned long long* result = g.next_result();
        if (id >= 0 && threadIdx.x == 0) {
            result[0] = (unsigned long long)id;
            result[1] = before;
        }
        g.sync();
        id = (int)__ldcg(result);
        before = __ldcg(result + 1);
        return id;
    }

    // The element holding position `at` of the weights walked from the largest key down (equal keys by id): its id
    // as draw_find_by_id returns it; before: the weight walked before it; key: its key (in every block). Four passes
    // of 8 key bits, each a histogram of the candidates that match the bits found so far, then the equal keys in id
    // order.
    __device__ int draw_find_by_rank(DrawGroup& g, const DrawRow& row, DrawAt at, bool publish, unsigned long long* hist,
                                     unsigned long long* shared, int* slot, unsigned long long* slotBefore,
                                     unsigned long long& before, unsigned& key) {
        unsigned prefix = 0u, mask = 0u;
        unsigned long long above = 0ull;  // the weight of the keys above the bits found so far
        for (int shift = 24; shift >= 0; shift -= 8) {
            draw_histogram(g, row, prefix, mask, shift, hist);
            if (threadIdx.x < 32) {  // the bin holding pos, bins walked from 255 down, eight a lane
                int lane = threadIdx.x;
                unsigned long long sum = 0ull;
                for (int j = 0; j < 8; j++) sum += hist[255 - (lane * 8 + j)];
                unsigned long long inclusive = sum;
                for (int o = 1; o < 32; o <<= 1) {
                    unsigned long long t = __shfl_up_sync(0xffffffffu, inclusive, o);
                    if (lane >= o) inclusive += t;
                }
                // The first pass sums every candidate: the mass a fraction is taken of.
                if (shift == 24) at.pos = at.resolve(__shfl_sync(0xffffffffu, inclusive, 31));
                unsigned long long pos = at.pos, walked = above + inclusive - sum;
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
                if (lane == 0) shared[0] = pos;
            }
            __syncthreads();
            int bin = *slot;
            unsigned long long walked = *slotBefore;
            at.pos = shared[0];
            at.rule = 0;
            __syncthreads();  // read by all before the slots are reused
            if (bin < 0) return -1;
            prefix |= (unsigned)bin << shift;
            mask |= 255u << shift;
            above = walked;
        }
        key = prefix;
        DrawAt within = {0, at.pos - above, 0.f};
        int id = draw_find_by_id(g, row, true, prefix, within, publish, shared, slot, slotBefore, before);
        before += above;
        return id;
    }

    // The n most likely tokens of the row before truncation (larger key first, equal keys by id) with their
    // log-probabilities (value - logZ), into out[2...] as (id, log-probability) pairs in id order, their count into
    // out[1]: the n-th by top-k's counts-rank select, then every block writes its tokens at or above it at offsets
    // from a scan of their counts.
    __device__ void draw_top_logprobs(DrawGroup& g, const DrawRow& row, int n, float logZ, float* out, unsigned long long* hist,
                                      unsigned long long* shared, int* slot, unsigned long long* slotBefore) {
        int written = 0;
        unsigned nthKey = 0u;
        int nthId = -1;
        if (n > 0) {
            DrawRow ranked = row;
            ranked.counts = true;
            ranked.kKey = 0u;
            ranked.kId = row.hi;  // any id: counts ignore it
            unsigned long long before;
            DrawAt nth = {0, (unsigned long long)(n - 1), 0.f};
            nthId = draw_find_by_rank(g, ranked, nth, true, hist, shared, slot, slotBefore, before, nthKey);
        }
        if (nthId >= 0) {
            int m = row.hi - row.lo, per = (m + DRAW_THREADS - 1) / DRAW_THREADS;
            int lo = row.lo + min(m, (int)threadIdx.x * per), hi = min(row.hi, lo + per);
            unsigned long long mine = 0ull;
            for (int i = lo; i < hi; i++) {
                unsigned k = row.key(i);
                if (k > nthKey || (k == nthKey && i <= nthId)) mine++;
            }
            unsigned long long blockCount, at = draw_block_scan(mine, shared, blockCount), earlier;
            unsigned long long total = draw_group_sum(g, blockCount, shared, earlier);
            at += earlier;
            for (int i = lo; i < hi; i++) {
                unsigned k = row.key(i);
                if (k > nthKey || (k == nthKey && i <= nthId)) {
                    out[2 + 2 * at] = __int_as_float(i);
                    out[3 + 2 * at] = draw_value(k) - logZ;
                    at++;
                }
            }
            written = (int)total;
        }
        if (g.slice == 0 && threadIdx.x == 0) out[1] = __int_as_float(written);
    }

    // keys: DRAW_THREADS-sized blocks hold ⌈V / gridDim.x⌉ keys each in dynamic shared memory. words: two per group,
    // zero before the first launch; partials: 2 · gridDim.x · 256 per group; results: 4 per group. The logits are
    // not written (penalties change the keys only).
    extern "C" __global__ void __launch_bounds__(DRAW_THREADS) draw_rows(const float* logits, const DrawParams* params, int draws, int V,
                                                                        const int2* penalties, int* out, float* logprobs, unsigned* words,
                                                                        unsigned long long* partials, unsigned long long* results) {
        pdl_wait();
        pdl_trigger();
        extern __shared__ unsigned draw_keys[];
        __shared__ unsigned long long hist[DRAW_BINS], shared[32], slotBefore;
        __shared__ int slot;
        int slices = gridDim.x, slice = blockIdx.x, groupIndex = blockIdx.y;
        DrawGroup g = {words + 2 * groupIndex, partials + (long)groupIndex * 2 * slices * DRAW_BINS, results + 4 * groupIndex,
                       0u, slices, slice, 0, 0};
        int per = (V + slices - 1) / slices, lo = min(V, slice * per), hi = min(V, lo + per);
        for (int d = groupIndex; d < draws; d += gridDim.y) {
            DrawParams p = params[d];
            const float* source = logits + (long)p.row * V;
            unsigned top = 0u;
    #pragma unroll 8
            for (int i = lo + threadIdx.x; i < hi; i += DRAW_THREADS) {
                unsigned k = draw_key(source[i] * p.inverseTemperature);
                draw_keys[i - lo] = k;
                top = max(top, k);
            }
            if (p.penaltyCount > 0) {  // each token once: no two threads write the same key
                __syncthreads();
                for (int e = threadIdx.x; e < p.penaltyCount; e += DRAW_THREADS) {
                    int2 entry = penalties[p.penaltyStart + e];
                    if (entry.x >= lo && entry.x < hi) draw_keys[entry.x - lo] = draw_key(draw_penalized(source[entry.x], p, entry.y) * p.inverseTemperature);
                }
                __syncthreads();
                top = 0u;
                for (int i = lo + threadIdx.x; i < hi; i += DRAW_THREADS) top = max(top, draw_keys[i - lo]);
            }
            top = draw_group_max(g, top, shared);  // synchronizes: the keys are in place
            DrawRow row = {draw_keys, lo, hi, draw_value(top), p.minP, 0u, V, false};
            // With no finite largest value there is no distribution: the first element of the largest key.
            float* logprobOut = p.topLogprobs >= 0 ? logprobs + (long)p.logprobSlot * DRAW_LOGPROB_WORDS : 0;
            if (top == 0u || (__float_as_uint(row.largest) & 0x7fffffffu) == 0x7f800000u) {  // NaN or ±inf
                unsigned distance = 0u;  // V - the first id of key top in this slice
                for (int i = lo + threadIdx.x; i < hi; i += DRAW_THREADS) {
                    if (draw_keys[i - lo] == top) distance = max(distance, (unsigned)(V - i));
                }
                distance = draw_group_max(g, distance, shared);
                if (slice == 0 && threadIdx.x == 0) {
                    out[p.out] = V - (int)distance;
                    if (logprobOut) {  // no distribution: as the host's log-sum-exp of such a row, not a number
                        logprobOut[0] = __int_as_float(0x7fc00000);
                        logprobOut[1] = __int_as_float(0);
                    }
                }
                __syncthreads();
                continue;
            }
            // log Z of the penalized, scaled row before truncation, from the exact fixed-point mass of every token.
            float logZ = 0.f;
            if (logprobOut) {
                DrawRow all = row;
                all.minP = 0.f;
                unsigned long long local = 0ull, earlier;
                for (int i = lo + threadIdx.x; i < hi; i += DRAW_THREADS) local += all.weight(i, all.key(i));
                unsigned long long mass = draw_group_sum(g, draw_block_sum(local, shared), shared, earlier);
                logZ = row.largest + (float)log((double)mass / (double)DRAW_ONE);
            }
            unsigned long long before;
            unsigned key;
            bool truncated = false;
            if (p.topK > 0 && p.topK < V) {  // the k-th element by rank bounds the candidates
                row.counts = true;
                DrawAt kth = {0, (unsigned long long)(p.topK - 1), 0.f};
                row.kId = draw_find_by_rank(g, row, kth, true, hist, shared, &slot, &slotBefore, before, key);
                row.kKey = key;
                row.counts = false;
                truncated = true;
            }
            DrawAt draw = {2, 0ull, p.uniform};
            if (p.topP < 1.f) {  // the nucleus ends at the element that brings the walked weight to top_p of the mass
                DrawAt cut = {1, 0ull, p.topP};
                int last = draw_find_by_rank(g, row, cut, true, hist, shared, &slot, &slotBefore, before, key);
                if (last >= 0) {
                    draw.pos = draw.resolve(before + row.weight(last, key));
                    draw.rule = 0;
                }
                truncated = true;
            }
            int token = truncated ? draw_find_by_rank(g, row, draw, false, hist, shared, &slot, &slotBefore, before, key)
                                  : draw_find_by_id(g, row, false, 0u, draw, false, shared, &slot, &slotBefore, before);
            if (threadIdx.x == 0 && (token >= 0 || (token == -1 && slice == 0))) {
                out[p.out] = token >= 0 ? token : 0;
                if (logprobOut) logprobOut[0] = token >= 0 ? draw_value(row.key(token)) - logZ : __int_as_float(0x7fc00000);
            }
            if (logprobOut) draw_top_logprobs(g, row, min(p.topLogprobs, V), logZ, logprobOut, hist, shared, &slot, &slotBefore);
            __syncthreads();
        }
        g.finish();
    }

    """#
}
