/// CUDA C kernels of the GPU forward pass, compiled by NVRTC at start for the device's architecture (cached on
/// disk by source hash). Activations are fp32, GEMM inputs bf16, the KV cache fp32 in the CPU's paged layout
/// ([block][layer][slot][kvDim]) so KV chunks move between CPU and GPU nodes unchanged.
enum GPUKernels {
    static let names = ["embed", "rmsnorm_bf16", "add_bias", "rope", "kv_write", "attention", "residual_add", "swiglu_bf16",
                        "to_bf16", "gather_rows"]

    static let source = #"""
    // bf16 as raw 16-bit words (no toolkit headers needed by NVRTC): round-to-nearest-even from fp32.
    typedef unsigned short bf16;
    __device__ __forceinline__ float bf2f(bf16 b) { return __uint_as_float(((unsigned)b) << 16); }
    __device__ __forceinline__ bf16 f2bf(float f) {
        unsigned u = __float_as_uint(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (bf16)((u >> 16) | 0x40);  // NaN stays NaN
        u += 0x7fff + ((u >> 16) & 1);
        return (bf16)(u >> 16);
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
    extern "C" {

    // x[t] = embedding[tokens[t]] (bf16 rows to fp32)
    __global__ void embed(const gemm_t* emb, const int* tokens, float* x, int D) {
        int t = blockIdx.x;
        const gemm_t* row = emb + (long)tokens[t] * D;
        for (int i = threadIdx.x; i < D; i += blockDim.x) x[(long)t * D + i] = from_gemm(row[i]);
    }

    // out[t] = bf16(x[t] / sqrt(mean(x[t]^2) + eps) * w); one block per row.
    __global__ void rmsnorm_bf16(const float* x, const float* w, gemm_t* out, int D, float eps) {
        __shared__ float partial[32];
        int t = blockIdx.x;
        const float* row = x + (long)t * D;
        float s = 0.f;
        for (int i = threadIdx.x; i < D; i += blockDim.x) s += row[i] * row[i];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
        if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = s;
        __syncthreads();
        if (threadIdx.x < 32) {
            s = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
            if (threadIdx.x == 0) partial[0] = s;
        }
        __syncthreads();
        float scale = rsqrtf(partial[0] / D + eps);
        for (int i = threadIdx.x; i < D; i += blockDim.x) out[(long)t * D + i] = to_gemm(row[i] * scale * w[i]);
    }

    __global__ void add_bias(float* y, const float* b, int n, long total) {
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < total) y[i] += b[i % n];
    }

    // Rotate-half RoPE in place on [rows][heads][hd]; one block per row.
    __global__ void rope(float* x, const int* pos, const float* inv_freq, int heads, int hd) {
        int t = blockIdx.x, half = hd / 2;
        for (int k = threadIdx.x; k < heads * half; k += blockDim.x) {
            int h = k / half, i = k % half;
            float angle = (float)pos[t] * inv_freq[i];
            float s, c;
            sincosf(angle, &s, &c);
            float* v = x + ((long)t * heads + h) * hd;
            float a = v[i], b = v[i + half];
            v[i] = a * c - b * s;
            v[i + half] = b * c + a * s;
        }
    }

    // Writes each row's K and V into its paged slot: offset ((block*layers + layer)*bs + slot)*kvDim.
    __global__ void kv_write(const float* k, const float* v, float* kc, float* vc, const int* row_block, const int* row_slot,
                             int layer, int layers, int bs, int kvDim) {
        int t = blockIdx.x;
        long o = (((long)row_block[t] * layers + layer) * bs + row_slot[t]) * kvDim;
        for (int i = threadIdx.x; i < kvDim; i += blockDim.x) { kc[o + i] = k[(long)t * kvDim + i]; vc[o + i] = v[(long)t * kvDim + i]; }
    }

    // Causal GQA attention for one (row, head) per block: scores over positions 0..pos in shared memory.
    __global__ void attention(const float* q, const float* kc, const float* vc, float* out, const int* row_pos,
                              const int* row_table, const int* tables, int layer, int layers, int bs, int heads,
                              int kvHeads, int hd, float scale) {
        extern __shared__ float scores[];
        __shared__ float red[32];
        int t = blockIdx.x, h = blockIdx.y, kvh = h / (heads / kvHeads), kvDim = kvHeads * hd;
        int n = row_pos[t] + 1;
        const int* table = tables + row_table[t];
        const float* qr = q + ((long)t * heads + h) * hd;
        float m = __int_as_float(0xff800000);  // -inf
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            const float* kr = kc + (((long)table[j / bs] * layers + layer) * bs + j % bs) * kvDim + kvh * hd;
            float s = 0.f;
            for (int i = 0; i < hd; i++) s += qr[i] * kr[i];
            s *= scale;
            scores[j] = s;
            m = fmaxf(m, s);
        }
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, o));
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = m;
        __syncthreads();
        if (threadIdx.x == 0) { float x = red[0]; for (int w = 1; w < (blockDim.x >> 5); w++) x = fmaxf(x, red[w]); red[0] = x; }
        __syncthreads();
        m = red[0];
        __syncthreads();
        float sum = 0.f;
        for (int j = threadIdx.x; j < n; j += blockDim.x) { float e = expf(scores[j] - m); scores[j] = e; sum += e; }
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffff, sum, o);
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = sum;
        __syncthreads();
        if (threadIdx.x == 0) { float x = 0.f; for (int w = 0; w < (blockDim.x >> 5); w++) x += red[w]; red[0] = x; }
        __syncthreads();
        float inv = 1.f / red[0];
        for (int i = threadIdx.x; i < hd; i += blockDim.x) {
            float acc = 0.f;
            for (int j = 0; j < n; j++) {
                const float* vr = vc + (((long)table[j / bs] * layers + layer) * bs + j % bs) * kvDim + kvh * hd;
                acc += scores[j] * vr[i];
            }
            out[((long)t * heads + h) * hd + i] = acc * inv;
        }
    }

    __global__ void residual_add(float* x, const float* d, long n) {
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) x[i] += d[i];
    }

    __global__ void swiglu_bf16(const float* gate, const float* up, gemm_t* out, long n) {
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) { float g = gate[i]; out[i] = to_gemm(g / (1.f + expf(-g)) * up[i]); }
    }

    __global__ void to_bf16(const float* x, gemm_t* out, long n) {
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) out[i] = to_gemm(x[i]);
    }

    // out[i] = x[rows[i]] (the rows whose logits are wanted)
    __global__ void gather_rows(const float* x, const int* rows, float* out, int D) {
        int i = blockIdx.x;
        for (int k = threadIdx.x; k < D; k += blockDim.x) out[(long)i * D + k] = x[(long)rows[i] * D + k];
    }
    }
    """#
}
