/// CUDA C kernels of the GPU forward pass, compiled by NVRTC at start for the device's architecture (cached on
/// disk by source hash). Activations are fp32, GEMM inputs bf16, the KV cache fp32 in the CPU's paged layout
/// ([block][layer][slot][kvDim]) so KV chunks move between CPU and GPU nodes unchanged.
enum GPUKernels {
    static let names = ["embed", "rmsnorm_bf16", "add_rmsnorm_bf16", "add_bias", "rope_split", "attention_split", "attention_combine", "attention_decode",
                        "attention_tiled", "attention_flash", "attention_mma64", "attention_mma128", "attention_mma64_2",
                        "attention_mma128_2", "gemv", "gemv_rows", "gemv_residual", "gemv_norm", "gemv_norm_swiglu",
                        "gemv_norm_rope", "residual_add", "swiglu_bf16", "gather_rows", "spin"]
        + fusedGEMVs.map { $0 + singleRowSuffix }

    /// The fused GEMVs, each also instantiated for one-row steps (suffix `_1`).
    static let fusedGEMVs = ["gemv_residual", "gemv_norm", "gemv_norm_swiglu", "gemv_norm_rope"]
    static let singleRowSuffix = "_1"

    /// The whole module: the shared prelude, then the per-row kernels, the batch-invariant and CUDA-core attention
    /// (AttentionKernels.swift), the default mode's decode and tensor-core attention (DefaultModeAttentionKernels.swift)
    /// and the GEMVs (GEMVKernels.swift).
    static let source = prelude + rowKernels + attentionSource + defaultModeAttentionSource + gemvSource

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
    #define NEG_INF __int_as_float(0xff800000)
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

    // out[t] = bf16(x[t] / sqrt(mean(x[t]^2) + eps) * w); one block per row.
    __global__ void rmsnorm_bf16(const float* x, const float* w, gemm_t* out, int D, float eps) {
        pdl_wait();
        pdl_trigger();
        int t = blockIdx.x;
        const float* row = x + (long)t * D;
        float s = 0.f;
        for (int i = threadIdx.x; i < D; i += blockDim.x) s += row[i] * row[i];
        float scale = rsqrtf(block_sum(s) / D + eps);
        for (int i = threadIdx.x; i < D; i += blockDim.x) out[(long)t * D + i] = to_gemm(row[i] * scale * w[i]);
    }

    // x[t] += delta[t] (the residual), then out = rmsnorm(x[t]): one launch where there were two.
    __global__ void add_rmsnorm_bf16(float* x, const float* delta, const float* w, gemm_t* out, int D, float eps) {
        pdl_wait();
        pdl_trigger();
        int t = blockIdx.x;
        float* row = x + (long)t * D;
        const float* d = delta + (long)t * D;
        float s = 0.f;
        for (int i = threadIdx.x; i < D; i += blockDim.x) { float v = row[i] + d[i]; row[i] = v; s += v * v; }
        float scale = rsqrtf(block_sum(s) / D + eps);
        for (int i = threadIdx.x; i < D; i += blockDim.x) out[(long)t * D + i] = to_gemm(row[i] * scale * w[i]);
    }

    __global__ void add_bias(float* y, const float* b, int n, long total) {
        pdl_wait();
        pdl_trigger();
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < total) y[i] += b[i % n];
    }

    // One row of the stacked Q|K|V GEMM output per block: rotate-half RoPE on Q (into q: [rows][heads][hd]) and on
    // K, and K and V written straight into their paged cache slot.
    __global__ void rope_split(const float* qkv, float* q, float* kc, float* vc, const int* pos, const float* inv_freq,
                               const int* row_block, const int* row_slot, int layer, int layers, int bs,
                               int heads, int kvHeads, int hd) {
        pdl_wait();
        pdl_trigger();
        int t = blockIdx.x, half = hd / 2, qd = heads * hd, kvd = kvHeads * hd;
        const float* row = qkv + (long)t * (qd + 2 * kvd);
        long slot = (((long)row_block[t] * layers + layer) * bs + row_slot[t]) * kvd;
        for (int e = threadIdx.x; e < (heads + kvHeads) * half; e += blockDim.x) {
            int h = e / half, i = e % half;
            float s, c;
            sincosf((float)pos[t] * inv_freq[i], &s, &c);
            const float* src = row + h * hd;  // K heads follow Q heads in the row
            float* dst = h < heads ? q + (long)t * qd + h * hd : kc + slot + (h - heads) * hd;
            float a = src[i], b = src[i + half];
            dst[i] = a * c - b * s;
            dst[i + half] = b * c + a * s;
        }
        for (int i = threadIdx.x; i < kvd; i += blockDim.x) vc[slot + i] = row[qd + kvd + i];
    }

    __global__ void residual_add(float* x, const float* d, long n) {
        pdl_wait();
        pdl_trigger();
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) x[i] += d[i];
    }

    // out[t][j] = silu(gate) · up, reading the stacked [rows][gate (F) | up (F)] GEMM output. Grid (F / 1024, rows):
    // four consecutive j per thread, 16-byte loads when F allows (no 64-bit division per element).
    __global__ void swiglu_bf16(const float* gate_up, gemm_t* out, int F) {
        pdl_wait();
        pdl_trigger();
        int t = blockIdx.y, j = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
        if (j >= F) return;
        const float* gate = gate_up + (long)t * 2 * F;
        gemm_t* o = out + (long)t * F;
        float g[4], u[4];
        if (F % 4 == 0) {
            float4 g4 = *(const float4*)(gate + j), u4 = *(const float4*)(gate + F + j);
            g[0] = g4.x; g[1] = g4.y; g[2] = g4.z; g[3] = g4.w;
            u[0] = u4.x; u[1] = u4.y; u[2] = u4.z; u[3] = u4.w;
        } else {
            for (int k = 0; k < 4; k++) { g[k] = j + k < F ? gate[j + k] : 0.f; u[k] = j + k < F ? gate[F + j + k] : 0.f; }
        }
        #pragma unroll
        for (int k = 0; k < 4; k++) if (j + k < F) o[j + k] = to_gemm(g[k] / (1.f + expf(-g[k])) * u[k]);
    }

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
    }  // extern "C"

    """#
}
