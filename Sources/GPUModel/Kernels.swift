/// CUDA C kernels of the GPU forward pass, compiled by NVRTC at start for the device's architecture (cached on
/// disk by source hash). Activations are fp32, GEMM inputs bf16, the KV cache fp32 in the CPU's paged layout
/// ([block][layer][slot][kvDim]) so KV chunks move between CPU and GPU nodes unchanged.
enum GPUKernels {
    static let names = ["embed", "to_bf16", "rmsnorm_bf16", "add_rmsnorm_bf16", "add_bias", "rope_split", "attention_split", "attention_combine", "attention_decode",
                        "attention_tiled", "attention_flash", "attention_mma64", "attention_mma128", "attention_mma64_2",
                        "attention_mma128_2", "gemv", "gemv_rows", "gemv_residual", "gemv_norm", "gemv_norm_swiglu",
                        "gemv_norm_rope", "residual_add", "swiglu_bf16", "swiglu_bf16in", "gather_rows", "argmax_rows", "spin", "decode_step_persistent"]
        + fusedGEMVs.map { $0 + singleRowSuffix }

    /// The fused GEMVs, each also instantiated for one-row steps (suffix `_1`).
    static let fusedGEMVs = ["gemv_residual", "gemv_norm", "gemv_norm_swiglu", "gemv_norm_rope"]
    static let singleRowSuffix = "_1"

    /// The whole module: the shared prelude, then the per-row kernels, the batch-invariant and CUDA-core attention
    /// (AttentionKernels.swift), the default mode's decode attention (DecodeAttentionKernels.swift) and tensor-core
    /// prefill attention (TensorCoreAttentionKernels.swift), the GEMVs (GEMVKernels.swift) and the persistent batch-1
    /// decode step built from them (its parts in PersistentDecodeKernel.swift, the kernel in
    /// PersistentDecodeStep.swift).
    static let source = prelude + rowKernels + attentionSource + decodeAttentionSource + tensorCoreAttentionSource + gemvSource
        + persistentDecodeSource + persistentDecodeStepSource

    /// Sampling (SamplingKernels.swift) in a module of its own: a device whose NVRTC cannot build it samples on the
    /// host instead of losing the forward pass.
    static let samplingModuleSource = prelude + samplingSource
    static let samplingNames = ["draw_rows"]

    /// bf16 conversions, the GEMM element type, constants.
    static let prelude = #"""
    // bf16 as raw 16-bit words (no toolkit headers needed by NVRTC): round-to-nearest-even from fp32.
    typedef unsigned short bf16;
    __device__ __forceinline__ float bf2f(bf16 b) { return __uint_as_float(((unsigned)b) << 16); }
    // sm_80+ converts in one instruction (the tensor-core attention converts every K/V element it stages); the same
    // rounding as the integer form below.
    __device__ __forceinline__ bf16 f2bf(float f) {
    #if __CUDA_ARCH__ >= 800
        unsigned short r;
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
        return r;
    #else
        unsigned u = __float_as_uint(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (bf16)((u >> 16) | 0x40);  // NaN stays NaN
        u += 0x7fff + ((u >> 16) & 1);
        return (bf16)(u >> 16);
    #endif
    }
    // GEMM inputs and weights are bf16, or fp32 when compiled with -DGEMM_FP32 (the exactness check mode).
    #ifdef GEMM_FP32
    typedef float gemm_t;
    __device__ __forceinline__ float from_gemm(float x) { return x; }
    __device__ __forceinline__ float to_gemm(float x) { return x; }
    #else
    typedef bf16 gemm_t;
    __device__ __forceinline__ float from_gemm(bf16 x) { return bf2f(x); }
    __device__ __forceinline__ bf16 to_gemm(float x) { return f2bf(x); }
    #endif
    // A GEMM input written as a bf16 pair: dst[i] = the rounded value and, when lo ≠ 0, dst[lo + i] = what the
    // rounding lost (also rounded). A GEMM over both row blocks, its two output blocks summed, then sees the input at
    // about 16 significant bits instead of 8 (GEMMs of few rows, where the GEMM is bound by the weights' bytes).
    __device__ __forceinline__ void store_gemm_input(gemm_t* dst, long i, long lo, float v) {
        gemm_t hi = to_gemm(v);
        dst[i] = hi;
        if (lo) dst[lo + i] = to_gemm(v - from_gemm(hi));
    }
    // A KV-cache write: the fp32 cache (what attention_decode reads and KV transfer moves) and, when there is one, its
    // bf16 shadow at the same index (what the tensor-core prefill attention streams with cp.async; the same rounding
    // that attention applied when it converted the fp32 cache itself).
    __device__ __forceinline__ void store_kv(float* cache, bf16* shadow, long i, float v) {
        cache[i] = v;
        if (shadow) shadow[i] = f2bf(v);
    }
    // Rotate-half RoPE of the pair (i, i + hd/2) of head h of row t, stored: a query head into q ([rows][heads][hd]),
    // a K head into its paged cache slot and the shadow. rope_split and the fused QKV GEMV share it (same bits).
    __device__ __forceinline__ void store_rope_pair(float* q, float* kc, bf16* k16, int t, int h, int i, int heads, int hd, long slot,
                                                    float a, float b, float sn, float cs) {
        float ra = a * cs - b * sn, rb = b * cs + a * sn;
        int half = hd / 2;
        if (h < heads) {
            float* dst = q + ((long)t * heads + h) * hd;
            dst[i] = ra;
            dst[i + half] = rb;
        } else {
            long at = slot + (h - heads) * hd;
            store_kv(kc, k16, at + i, ra);
            store_kv(kc, k16, at + i + half, rb);
        }
    }
    #define NEG_INF __int_as_float(0xff800000)
    // 16 bytes global → shared without passing through registers; `valid` false fills zeros (keys past the sequence:
    // their V rows must be finite, as P = 0 multiplies them).
    __device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
        unsigned a = (unsigned)__cvta_generic_to_shared(dst);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(a), "l"(src), "r"(valid ? 16 : 0) : "memory");
    }
    __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
    template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory"); }

    // Programmatic dependent launch (sm_90+): wait until the kernel before this one on the stream has finished and
    // its writes are visible (every kernel does, before reading its inputs or writing anything), then let the next
    // one start its own independent work. No-ops when not launched that way, and before sm_90.
    __device__ __forceinline__ void pdl_wait() {
    #if __CUDA_ARCH__ >= 900
        asm volatile("griddepcontrol.wait;" ::: "memory");
    #endif
    }
    __device__ __forceinline__ void pdl_trigger() {
    #if __CUDA_ARCH__ >= 900
        asm volatile("griddepcontrol.launch_dependents;" :::);
    #endif
    }

    """#

    /// Embedding, RMSNorm (alone and fused with the residual add), bias, RoPE + KV-cache write, SwiGLU, residual add,
    /// row gather: one block per row or one thread per element.
    static let rowKernels = #"""
    // Σ s over the block (a whole number of warps): warp sums, then the first warp sums those; every thread gets it.
    // Once per kernel (one shared buffer).
    __device__ __forceinline__ float block_sum(float s) {
        __shared__ float partial[32];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
        if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = s;
        __syncthreads();
        if (threadIdx.x < 32) {
            s = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
            if (threadIdx.x == 0) partial[0] = s;
        }
        __syncthreads();
        return partial[0];
    }

    extern "C" {

    // x[t] = embedding[tokens[t]] (bf16 rows to fp32)
    __global__ void embed(const gemm_t* emb, const int* tokens, float* x, int D) {
        pdl_wait();
        pdl_trigger();
        int t = blockIdx.x;
        const gemm_t* row = emb + (long)tokens[t] * D;
        for (int i = threadIdx.x; i < D; i += blockDim.x) x[(long)t * D + i] = from_gemm(row[i]);
    }

    // A row's values held in registers, RMS_VALUES a thread at most (rows up to RMS_VALUES × the block size): every
    // load of a thread is in flight at once instead of one after the other (a block per row leaves most SMs idle at
    // decode batch sizes, so the loads' latency is the kernel's time). Sums in the loops' order: the same bits.
    #define RMS_VALUES 16

    // out[t] = rmsnorm of a row held in registers (v, RMS_VALUES a thread), s: this thread's sum of squares.
    __device__ __forceinline__ void rms_store(const float (&v)[RMS_VALUES], float s, const float* w, gemm_t* out, int t, int D,
                                              float eps, long lo) {
        float scale = rsqrtf(block_sum(s) / D + eps);
        #pragma unroll
        for (int j = 0; j < RMS_VALUES; j++) {
            int i = threadIdx.x + j * blockDim.x;
            if (i < D) store_gemm_input(out, (long)t * D + i, lo, v[j] * scale * w[i]);
        }
    }

    // out[t] = bf16(x[t] / sqrt(mean(x[t]^2) + eps) * w); one block per row. lo: see store_gemm_input.
    __global__ void rmsnorm_bf16(const float* x, const float* w, gemm_t* out, int D, float eps, long lo) {
        pdl_wait();
        pdl_trigger();
        int t = blockIdx.x;
        const float* row = x + (long)t * D;
        float s = 0.f;
        if (D <= RMS_VALUES * (int)blockDim.x) {
            float v[RMS_VALUES];
            #pragma unroll
            for (int j = 0; j < RMS_VALUES; j++) {
                int i = threadIdx.x + j * blockDim.x;
                v[j] = i < D ? row[i] : 0.f;
            }
            #pragma unroll
            for (int j = 0; j < RMS_VALUES; j++)
                if (threadIdx.x + j * blockDim.x < D) s += v[j] * v[j];
            rms_store(v, s, w, out, t, D, eps, lo);
            return;
        }
        for (int i = threadIdx.x; i < D; i += blockDim.x) s += row[i] * row[i];
        float scale = rsqrtf(block_sum(s) / D + eps);
        for (int i = threadIdx.x; i < D; i += blockDim.x) store_gemm_input(out, (long)t * D + i, lo, row[i] * scale * w[i]);
    }

    // x[t] += delta[t] (the residual; + delta[deltaLo + …], the GEMM's second output block, when deltaLo ≠ 0), then
    // out = rmsnorm(x[t]): one launch where there were two.
    __global__ void add_rmsnorm_bf16(float* x, const float* delta, const float* w, gemm_t* out, int D, float eps, long deltaLo, long lo) {
        pdl_wait();
        pdl_trigger();
        int t = blockIdx.x;
        float* row = x + (long)t * D;
        const float* d = delta + (long)t * D;
        float s = 0.f;
        if (D <= RMS_VALUES * (int)blockDim.x) {
            float v[RMS_VALUES];
            #pragma unroll
            for (int j = 0; j < RMS_VALUES; j++) {
                int i = threadIdx.x + j * blockDim.x;
                v[j] = i < D ? row[i] + (deltaLo ? d[i] + d[deltaLo + i] : d[i]) : 0.f;
            }
            #pragma unroll
            for (int j = 0; j < RMS_VALUES; j++) {
                int i = threadIdx.x + j * blockDim.x;
                if (i < D) {
                    row[i] = v[j];
                    s += v[j] * v[j];
                }
            }
            rms_store(v, s, w, out, t, D, eps, lo);
            return;
        }
        for (int i = threadIdx.x; i < D; i += blockDim.x) {
            float v = row[i] + (deltaLo ? d[i] + d[deltaLo + i] : d[i]);
            row[i] = v;
            s += v * v;
        }
        float scale = rsqrtf(block_sum(s) / D + eps);
        for (int i = threadIdx.x; i < D; i += blockDim.x) store_gemm_input(out, (long)t * D + i, lo, row[i] * scale * w[i]);
    }

    __global__ void add_bias(float* y, const float* b, int n, long total) {
        pdl_wait();
        pdl_trigger();
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < total) y[i] += b[i % n];
    }

    // One row of the stacked Q|K|V GEMM output per block: rotate-half RoPE on Q (into q: [rows][heads][hd]) and on
    // K, and K and V written straight into their paged cache slot (and its bf16 shadow, k16/v16, when not null).
    // lo ≠ 0: the GEMM's second output block (from the inputs' low halves) is added.
    __global__ void rope_split(const float* qkv, float* q, float* kc, float* vc, const int* pos, const float* inv_freq,
                               const int* row_block, const int* row_slot, int layer, int layers, int bs,
                               int heads, int kvHeads, int hd, long lo, bf16* k16, bf16* v16) {
        pdl_wait();
        pdl_trigger();
        // The row's rotation angles once for all its heads (head dims up to 256).
        __shared__ float sines[128], cosines[128];
        int t = blockIdx.x, half = hd / 2, qd = heads * hd, kvd = kvHeads * hd;
        const float* row = qkv + (long)t * (qd + 2 * kvd);
        long slot = (((long)row_block[t] * layers + layer) * bs + row_slot[t]) * kvd;
        for (int i = threadIdx.x; i < half; i += blockDim.x) sincosf((float)pos[t] * inv_freq[i], &sines[i], &cosines[i]);
        __syncthreads();
        for (int e = threadIdx.x; e < (heads + kvHeads) * half; e += blockDim.x) {
            int h = e / half, i = e % half;
            const float* src = row + h * hd;  // K heads follow Q heads in the row
            float a = lo ? src[i] + src[lo + i] : src[i], b = lo ? src[i + half] + src[lo + i + half] : src[i + half];
            store_rope_pair(q, kc, k16, t, h, i, heads, hd, slot, a, b, sines[i], cosines[i]);
        }
        for (int i = threadIdx.x; i < kvd; i += blockDim.x) store_kv(vc, v16, slot + i, lo ? row[qd + kvd + i] + row[lo + qd + kvd + i] : row[qd + kvd + i]);
    }

    // dst[i] = bf16(src[i]): the KV cache's bf16 shadow of blocks imported by KV transfer.
    __global__ void to_bf16(const float* src, bf16* dst, long n) {
        pdl_wait();
        pdl_trigger();
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) dst[i] = f2bf(src[i]);
    }

    __global__ void residual_add(float* x, const float* d, long lo, long n) {
        pdl_wait();
        pdl_trigger();
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) x[i] += lo ? d[i] + d[lo + i] : d[i];
    }

    }  // extern "C"

    // Eight consecutive GEMM outputs as floats: 32 bytes of fp32, or 16 of bf16 (the gate|up GEMM of long prefills).
    __device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
        float4 a = *(const float4*)p, b = *(const float4*)(p + 4);
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    }
    __device__ __forceinline__ void load8(const bf16* p, float (&v)[8]) {
        uint4 a = *(const uint4*)p;
        unsigned u[4] = {a.x, a.y, a.z, a.w};
        #pragma unroll
        for (int k = 0; k < 4; k++) { v[2 * k] = __uint_as_float(u[k] << 16); v[2 * k + 1] = __uint_as_float(u[k] & 0xffff0000u); }
    }
    __device__ __forceinline__ float to_float(float v) { return v; }
    __device__ __forceinline__ float to_float(bf16 v) { return bf2f(v); }
    // Eight GEMM inputs as one or two 16-byte stores: store_gemm_input's values (rounded, and their low halves at lo).
    __device__ __forceinline__ void store8(gemm_t* dst, long lo, const float (&v)[8]) {
    #ifdef GEMM_FP32
        *(float4*)dst = make_float4(v[0], v[1], v[2], v[3]);
        *(float4*)(dst + 4) = make_float4(v[4], v[5], v[6], v[7]);
        if (lo) { *(float4*)(dst + lo) = make_float4(0.f, 0.f, 0.f, 0.f); *(float4*)(dst + lo + 4) = make_float4(0.f, 0.f, 0.f, 0.f); }
    #else
        unsigned hi[4], low[4];
        #pragma unroll
        for (int k = 0; k < 4; k++) {
            bf16 a = f2bf(v[2 * k]), b = f2bf(v[2 * k + 1]);
            hi[k] = (unsigned)a | ((unsigned)b << 16);
            low[k] = (unsigned)f2bf(v[2 * k] - bf2f(a)) | ((unsigned)f2bf(v[2 * k + 1] - bf2f(b)) << 16);
        }
        *(uint4*)dst = make_uint4(hi[0], hi[1], hi[2], hi[3]);
        if (lo) *(uint4*)(dst + lo) = make_uint4(low[0], low[1], low[2], low[3]);
    #endif
    }

    // out[t][j] = silu(gate) · up, reading the stacked [rows][gate (F) | up (F)] GEMM output. Grid (F / 2048, rows):
    // eight consecutive j per thread, 16-byte loads and stores when F allows. inLo ≠ 0: the GEMM's second output block
    // is added; outLo: see store_gemm_input.
    template <typename In>
    __device__ __forceinline__ void swiglu(const In* gate_up, gemm_t* out, int F, long inLo, long outLo) {
        pdl_wait();
        pdl_trigger();
        int t = blockIdx.y, j = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
        if (j >= F) return;
        const In* gate = gate_up + (long)t * 2 * F;
        gemm_t* o = out + (long)t * F;
        float g[8], u[8], r[8];
        if (F % 8 == 0) {
            load8(gate + j, g);
            load8(gate + F + j, u);
            if (inLo) {
                float g2[8], u2[8];
                load8(gate + inLo + j, g2);
                load8(gate + inLo + F + j, u2);
                #pragma unroll
                for (int k = 0; k < 8; k++) { g[k] += g2[k]; u[k] += u2[k]; }
            }
            #pragma unroll
            for (int k = 0; k < 8; k++) r[k] = g[k] / (1.f + expf(-g[k])) * u[k];
            store8(o + j, outLo, r);
            return;
        }
        for (int k = 0; k < 8 && j + k < F; k++) {
            float gk = to_float(gate[j + k]) + (inLo ? to_float(gate[inLo + j + k]) : 0.f);
            float uk = to_float(gate[F + j + k]) + (inLo ? to_float(gate[inLo + F + j + k]) : 0.f);
            store_gemm_input(o, j + k, outLo, gk / (1.f + expf(-gk)) * uk);
        }
    }
    extern "C" {
    __global__ void swiglu_bf16(const float* gate_up, gemm_t* out, int F, long inLo, long outLo) {
        swiglu<float>(gate_up, out, F, inLo, outLo);
    }
    // The same from a bf16 gate|up GEMM output (prefills of many rows: half the bytes written and read).
    __global__ void swiglu_bf16in(const bf16* gate_up, gemm_t* out, int F) { swiglu<bf16>(gate_up, out, F, 0, 0); }

    // Keeps the GPU busy for `cycles` clock cycles while the host queues a profiled step behind it, so that the
    // per-operation event times measure the GPU's back-to-back work rather than the host's launch pace.
    __global__ void spin(long long cycles) {
        long long start = clock64();
        while (clock64() - start < cycles) {}
    }

    // out[i] = x[rows[i]] (the rows whose logits are wanted)
    __global__ void gather_rows(const float* x, const int* rows, float* out, int D) {
        pdl_wait();
        pdl_trigger();
        int i = blockIdx.x;
        for (int k = threadIdx.x; k < D; k += blockDim.x) out[(long)i * D + k] = x[(long)rows[i] * D + k];
    }

    // out[r] = the index of row r's largest logit, chosen as the engine's Logits.argmax does: the lowest index among
    // equals, NaNs passed over (but index 0 when logit 0 is NaN). Greedy decoding downloads one int a row instead of
    // the vocabulary. gridDim.x blocks of ARGMAX_THREADS share a row (one block alone reads 0.5 MB at one SM's pace):
    // each folds its part into one 64-bit key, ordered as (value, then lower index), with atomicMax into keys[r];
    // the last block of the row (a counter) writes the index and zeroes the key and the counter for the next launch.
    #define ARGMAX_THREADS 256
    __device__ __forceinline__ unsigned long long argmax_key(float v, int i) {
        unsigned b = __float_as_uint(v == 0.f ? 0.f : v);            // -0 ties with +0, as the comparison does
        unsigned o = (b & 0x80000000u) ? ~b : (b | 0x80000000u);     // float order as unsigned order
        return ((unsigned long long)o << 32) | (0xFFFFFFFFu - (unsigned)i);
    }
    __global__ void __launch_bounds__(ARGMAX_THREADS) argmax_rows(const float* logits, int V, unsigned long long* keys,
                                                                  unsigned* counters, int* out) {
        pdl_wait();
        pdl_trigger();
        __shared__ unsigned long long best[ARGMAX_THREADS / 32];
        int r = blockIdx.y, per = (V + gridDim.x - 1) / gridDim.x, lo = blockIdx.x * per, hi = min(V, lo + per);
        const float* row = logits + (long)r * V;
        unsigned long long key = 0;  // below every value's key
        for (int k = lo + threadIdx.x; k < hi; k += ARGMAX_THREADS) {
            float v = row[k];
            if (v == v) key = max(key, argmax_key(v, k));  // v == v: not NaN
        }
        if (blockIdx.x == 0 && threadIdx.x == 0 && row[0] != row[0]) key = ~0ull;  // index 0 above everything
        for (int o = 16; o > 0; o >>= 1) key = max(key, __shfl_xor_sync(0xffffffff, key, o));
        if ((threadIdx.x & 31) == 0) best[threadIdx.x >> 5] = key;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < ARGMAX_THREADS / 32; w++) key = max(key, best[w]);
            atomicMax(keys + r, key);
            __threadfence();
            if (atomicAdd(counters + r, 1u) == gridDim.x - 1) {
                __threadfence();
                unsigned long long k = atomicExch(keys + r, 0ull);
                out[r] = (int)(0xFFFFFFFFu - (unsigned)k);  // k = ~0: index 0
                counters[r] = 0;
            }
        }
    }
    }  // extern "C"

    """#
}
