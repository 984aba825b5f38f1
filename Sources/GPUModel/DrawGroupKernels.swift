extension GPUKernels {
    /// How the blocks drawing one row (draw_rows, SamplingKernels.swift) work as one: barriers through global words,
    /// and sums, maxima and scans over the warp, the block and the group.
    static let drawGroupSource = #"""
    // Where the blocks of a group meet: arrivals in words[0], blocks finished in words[1] (the last one zeroes both
    // for the next launch). Each pass's per-block partials go to one of two buffers of slices × 256 words in turn: a
    // block writes a buffer again only after a barrier that every block reaches after reading it. results: two slots
    // (id, weight walked before it) in which the block holding a found element tells the others, used in turn.
    struct DrawGroup {
        unsigned* words;
        unsigned long long* partials;
        unsigned long long* results;
        unsigned target;
        int slices, slice, pass, result;
        __device__ void sync() {
            __syncthreads();
            if (slices == 1) return;
            target += slices;
            if (threadIdx.x == 0) {
                __threadfence();
                atomicAdd(words, 1u);
                unsigned seen;
                do { asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(words) : "memory"); } while (seen < target);
            }
            __syncthreads();
        }
        __device__ unsigned long long* next_partials() { return partials + (long)(pass++ & 1) * slices * DRAW_BINS; }
        __device__ unsigned long long* next_result() { return results + 2 * (result++ & 1); }
        __device__ void finish() {
            __syncthreads();
            if (slices > 1 && threadIdx.x == 0) {
                __threadfence();
                if (atomicAdd(words + 1, 1u) == (unsigned)slices - 1u) {
                    words[0] = 0u;
                    words[1] = 0u;
                    __threadfence();
                }
            }
        }
    };

    // Σ v over the block, the same in every thread (integers: no order to fix).
    __device__ unsigned long long draw_block_sum(unsigned long long v, unsigned long long* shared) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        __syncthreads();
        if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = v;
        __syncthreads();
        v = (threadIdx.x & 31) < DRAW_WARPS ? shared[threadIdx.x & 31] : 0ull;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        return v;
    }
    __device__ unsigned draw_block_max(unsigned v, unsigned long long* shared) {
        for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
        __syncthreads();
        if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = v;
        __syncthreads();
        v = (threadIdx.x & 31) < DRAW_WARPS ? (unsigned)shared[threadIdx.x & 31] : 0u;
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
        unsigned long long warpSum = lane < DRAW_WARPS ? shared[lane] : 0ull, warpsThrough = warpSum;
        for (int o = 1; o < 32; o <<= 1) {
            unsigned long long t = __shfl_up_sync(0xffffffffu, warpsThrough, o);
            if (lane >= o) warpsThrough += t;
        }
        unsigned long long before = __shfl_sync(0xffffffffu, warpsThrough - warpSum, warp);
        total = __shfl_sync(0xffffffffu, warpsThrough, DRAW_WARPS - 1);
        return before + inclusive - v;
    }

    // A per-block value (the same in all its threads) over the group: the sum, and in `earlier` the sum of the blocks
    // before this one (slices in id order).
    __device__ unsigned long long draw_group_sum(DrawGroup& g, unsigned long long v, unsigned long long* shared, unsigned long long& earlier) {
        if (g.slices == 1) { earlier = 0ull; return v; }
        unsigned long long* buffer = g.next_partials();
        if (threadIdx.x == 0) buffer[g.slice] = v;
        g.sync();
        unsigned long long mine = (int)threadIdx.x < g.slices ? __ldcg(buffer + threadIdx.x) : 0ull;
        earlier = draw_block_sum((int)threadIdx.x < g.slice ? mine : 0ull, shared);
        return draw_block_sum(mine, shared);
    }
    __device__ unsigned draw_group_max(DrawGroup& g, unsigned v, unsigned long long* shared) {
        v = draw_block_max(v, shared);
        if (g.slices == 1) return v;
        unsigned long long* buffer = g.next_partials();
        if (threadIdx.x == 0) buffer[g.slice] = v;
        g.sync();
        return draw_block_max((int)threadIdx.x < g.slices ? (unsigned)__ldcg(buffer + threadIdx.x) : 0u, shared);
    }

    """#
}
