extension GPUKernels {
    /// The GEMV for decode's few-row GEMMs and for every GEMM in batch-invariant mode.
    static let gemvSource = #"""
    // y[t][o] = Σ_i x[t][i]·W[o][i]: one warp per output streams W's row once per GEMV_ROWS rows of x (blockIdx.y
    // picks them) with 16-byte loads; fp32 accumulation in a fixed order per output, warp-shuffle reduction. Decode's
    // GEMMs (cuBLAS's kernels leave most of the bandwidth unused there), and every GEMM in batch-invariant mode: an
    // output's arithmetic is the same whatever the number of rows. inputs must be a multiple of 8.
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

    template <int AHEAD>
    __device__ void gemv_body(const gemm_t* x, const gemm_t* w, float* y, int rows, int inputs, int outputs) {
        int o = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
        if (o >= outputs) return;
        int t0 = blockIdx.y * GEMV_ROWS;
        rows = min(GEMV_ROWS, rows - t0);
        x += (long)t0 * inputs;
        y += (long)t0 * outputs;
        float acc[GEMV_ROWS];
        #pragma unroll
        for (int t = 0; t < GEMV_ROWS; t++) acc[t] = 0.f;
        const gemm_t* wr = w + (long)o * inputs;
        // AHEAD chunks of W are loaded before any is used (bytes in flight); accumulation stays chunk by chunk, so
        // every AHEAD gives the same results.
        for (int base = lane * GEMV_VEC; base < inputs; base += 32 * GEMV_VEC * AHEAD) {
            uint4 wv[AHEAD];
            #pragma unroll
            for (int u = 0; u < AHEAD; u++) {
                int i = base + u * 32 * GEMV_VEC;
                if (i < inputs) wv[u] = *(const uint4*)(wr + i);
            }
            #pragma unroll
            for (int u = 0; u < AHEAD; u++) {
                int i = base + u * 32 * GEMV_VEC;
                if (i >= inputs) break;
                float wf[GEMV_VEC];
                unpack(wv[u], wf);
                #pragma unroll
                for (int t = 0; t < GEMV_ROWS; t++) {
                    if (t < rows) {
                        float xf[GEMV_VEC];
                        unpack(*(const uint4*)(x + (long)t * inputs + i), xf);
                        #pragma unroll
                        for (int k = 0; k < GEMV_VEC; k++) acc[t] = fmaf(wf[k], xf[k], acc[t]);
                    }
                }
            }
        }
        #pragma unroll
        for (int t = 0; t < GEMV_ROWS; t++) {
            if (t < rows) {
                float s = acc[t];
                #pragma unroll
                for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffff, s, off);
                if (lane == 0) y[(long)t * outputs + o] = s;
            }
        }
    }

    extern "C" {
    // Few rows: more of W in flight per lane. Many rows (batch-invariant mode): fewer registers, more warps.
    __global__ void gemv(const gemm_t* x, const gemm_t* w, float* y, int rows, int inputs, int outputs) {
        gemv_body<4>(x, w, y, rows, inputs, outputs);
    }
    __global__ void gemv_rows(const gemm_t* x, const gemm_t* w, float* y, int rows, int inputs, int outputs) {
        gemv_body<1>(x, w, y, rows, inputs, outputs);
    }
    }  // extern "C"

    """#
}
