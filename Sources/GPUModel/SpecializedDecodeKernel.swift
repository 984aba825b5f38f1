extension GPUKernels {
    /// Batch-1 decode as one persistent kernel with a producer warp: uses `LayerWeights`, `PDResidualOut`, `pd_now`
    /// of `persistentDecodeSource`, the output forms of `gemvSource` and `decode_attention_block`.
    static let specializedDecodeSource = #"""
    // decode_step_persistent's phases and arithmetic, with the weight copies taken off the warps that compute. Warp 15
    // of each block (one per SM) is the producer: one lane walks the step's weight rows in the order this block
    // consumes them (every layer's QKV, o, gate|up and down units blockIdx.x, + gridDim.x, ...) and copies each row, in
    // pieces of WS_PIECE bytes, into a ring of slots in shared memory with TMA bulk copies; an mbarrier per slot says
    // when a piece has landed (full) and when its warp is done with it (empty). It never waits for a grid barrier, only
    // for free slots, so the weights keep streaming through norms, attention and barriers, as far ahead as the ring
    // holds. Warps 0-14 compute: they meet at named barrier 1 (480 threads) and at the grid barriers, and take the
    // block's units in turn (unit r: warp r mod 15), each unit with gemv_core's per-part arithmetic, so the logits
    // equal the fused kernels' bit for bit. Attention runs one decode-attention block per SM (warps 0-7, named
    // barrier 2). Dynamic shared memory: GPULlama.specializedDecodeShared.
    #define WS_THREADS 512
    #define WS_CONSUMERS 480
    #define WS_CONSUMER_WARPS 15
    #define WS_PIECE 4096

    __device__ __forceinline__ void ws_consumer_sync() { asm volatile("bar.sync 1, 480;" ::: "memory"); }

    __device__ __forceinline__ unsigned smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
    __device__ __forceinline__ void mbar_init(unsigned long long* b, unsigned count) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(smem_addr(b)), "r"(count) : "memory");
    }
    __device__ __forceinline__ void mbar_wait(unsigned long long* b, unsigned parity) {
        unsigned done;
        do {
            asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
                         : "=r"(done) : "r"(smem_addr(b)), "r"(parity) : "memory");
        } while (!done);
    }
    __device__ __forceinline__ void mbar_arrive(unsigned long long* b) {
        asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(smem_addr(b)) : "memory");
    }
    // The producer's arrival on a full barrier, announcing the bytes its copy will complete.
    __device__ __forceinline__ void mbar_expect_tx(unsigned long long* b, unsigned bytes) {
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(smem_addr(b)), "r"(bytes) : "memory");
    }
    __device__ __forceinline__ void bulk_copy(void* dst, const void* src, unsigned bytes, unsigned long long* bar) {
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                     :: "r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)) : "memory");
    }

    // The ring: slots of WS_PIECE bytes; piece number q (counted over the whole step, by the producer and by every
    // consumer thread alike) lives in slot q mod slots, its n = q / slots-th use of the slot (mbarrier parity n & 1).
    struct WSRing {
        unsigned char* data; unsigned long long* full; unsigned long long* empty; int slots;
    };

    // A place in the ring, kept without divisions: slot and lap parity.
    struct WSCursor {
        int slot = 0; unsigned parity = 0; bool reuse = false;
        __device__ __forceinline__ void advance(int slots) {
            if (++slot == slots) { slot = 0; parity ^= 1; reuse = true; }
        }
    };
    // The producer (one thread issues every copy of the SM): the next piece to copy, and the oldest piece whose copy
    // may still fly. At most `depth` copies fly at once: the rest of the ring holds pieces that have landed, so the
    // SM's memory queue stays short and the loads of the phases that wait on latency are not queued behind it.
    struct WSProducer {
        WSCursor next, oldest; int inFlight = 0, depth;
    };

    // The producer's copies of one GEMV's units for this block: NOUT rows a unit (out.row), pieces of WS_PIECE bytes.
    template <int NOUT, class Out>
    __device__ __forceinline__ void ws_produce(const WSRing& ring, WSProducer& pr, const gemm_t* w, int inputs, int units, const Out& out) {
        WSCursor& c = pr.next;
        int rowBytes = inputs * (int)sizeof(gemm_t);
        for (int u = blockIdx.x; u < units; u += gridDim.x) {
            #pragma unroll
            for (int m = 0; m < NOUT; m++) {
                const unsigned char* src = (const unsigned char*)(w + (long)out.row(u, m) * inputs);
                for (int off = 0; off < rowBytes; off += WS_PIECE) {
                    // The slot's previous piece (one lap ago) is done with: its empty phase of that lap completed.
                    if (c.reuse) mbar_wait(ring.empty + c.slot, c.parity ^ 1);
                    if (pr.inFlight == pr.depth) {
                        mbar_wait(ring.full + pr.oldest.slot, pr.oldest.parity);
                        pr.oldest.advance(ring.slots);
                        pr.inFlight--;
                    }
                    unsigned bytes = (unsigned)min(WS_PIECE, rowBytes - off);
                    mbar_expect_tx(ring.full + c.slot, bytes);
                    bulk_copy(ring.data + c.slot * WS_PIECE, src + off, bytes, ring.full + c.slot);
                    c.advance(ring.slots);
                    pr.inFlight++;
                }
            }
        }
    }

    // A consumer warp's share of one GEMV (the block's units r = warp, warp + 15, ...) with gemv_core's per-part
    // arithmetic: part p's chunks (p · 32 + lane) · GEMV_VEC + k · step added in k order, the parts' warp sums added in
    // part order. The loop runs k outside and the KS parts inside (each part its own accumulator, so the same bits),
    // so that the pieces of a long row are used in order: each is waited for just before its first chunk and freed
    // after its last. Every consumer thread advances q past the block's pieces of this GEMV.
    template <int NOUT, int KS, class Out>
    __device__ void ws_gemv(const WSRing& ring, int& q, int inputs, int units, const Out& out, const gemm_t* xs) {
        const int epp = WS_PIECE / (int)sizeof(gemm_t);  // elements a piece
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
        int ppr = (inputs + epp - 1) / epp, spu = NOUT * ppr;
        int count = (int)blockIdx.x < units ? (units - (int)blockIdx.x + (int)gridDim.x - 1) / (int)gridDim.x : 0;
        const int step = 32 * GEMV_VEC * KS;
        int kmax = (inputs + step - 1) / step;
        for (int r = warp; r < count; r += WS_CONSUMER_WARPS) {
            int q0 = q + r * spu, s0 = q0 % ring.slots;
            unsigned n0 = (unsigned)(q0 / ring.slots);
            // Piece c of row m: ring slot s0 + m · ppr + c (wrapped), lap n0 or n0 + 1.
            auto slotOf = [&](int m, int c) { int s = s0 + m * ppr + c; return s < ring.slots ? s : s - ring.slots; };
            auto lapOf = [&](int m, int c) { return (s0 + m * ppr + c < ring.slots ? n0 : n0 + 1) & 1; };
            float acc[KS][NOUT];
            #pragma unroll
            for (int p = 0; p < KS; p++) {
                #pragma unroll
                for (int m = 0; m < NOUT; m++) acc[p][m] = 0.f;
            }
            int piece = -1;  // the highest piece waited for
            for (int k = 0; k < kmax; k++) {
                // The pieces this k reaches (chunks of k · step .. k · step + step - 1).
                int last = min(k * step + step, inputs) - 1;
                while (piece < last / epp) {
                    piece++;
                    #pragma unroll
                    for (int m = 0; m < NOUT; m++) mbar_wait(ring.full + slotOf(m, piece), lapOf(m, piece));
                }
                #pragma unroll
                for (int p = 0; p < KS; p++) {
                    int i = (p * 32 + lane) * GEMV_VEC + k * step;
                    if (i < inputs) {
                        float xf[GEMV_VEC];
                        unpack(*(const uint4*)(xs + i), xf);
                        #pragma unroll
                        for (int m = 0; m < NOUT; m++) {
                            float wf[GEMV_VEC];
                            unpack(*(const uint4*)(ring.data + (long)slotOf(m, i / epp) * WS_PIECE + (i % epp) * (int)sizeof(gemm_t)), wf);
                            #pragma unroll
                            for (int e = 0; e < GEMV_VEC; e++) acc[p][m] = fmaf(wf[e], xf[e], acc[p][m]);
                        }
                    }
                }
                // Pieces wholly before the next k's first chunk are done with.
                int done = k + 1 < kmax ? ((k + 1) * step) / epp : ppr;
                __syncwarp();
                if (lane == 0) {
                    for (int c = (k * step) / epp; c < done; c++) {
                        #pragma unroll
                        for (int m = 0; m < NOUT; m++) mbar_arrive(ring.empty + slotOf(m, c));
                    }
                }
            }
            float sum[NOUT];
            #pragma unroll
            for (int p = 0; p < KS; p++) {
                #pragma unroll
                for (int m = 0; m < NOUT; m++) {
                    float s = acc[p][m];
                    #pragma unroll
                    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffff, s, off);
                    sum[m] = p == 0 ? s : sum[m] + s;
                }
            }
            if (lane == 0) out.store((int)blockIdx.x + r * (int)gridDim.x, 0, sum);
        }
        q += count * spu;
    }
    // ws_gemv for the parts count chosen at run time (GPUGemm.split: 1, 2, 4 or 8).
    template <int NOUT, class Out>
    __device__ __forceinline__ void ws_gemv_ks(const WSRing& ring, int& q, int inputs, int units, int ks, const Out& out, const gemm_t* xs) {
        if (ks == 1) ws_gemv<NOUT, 1>(ring, q, inputs, units, out, xs);
        else if (ks == 2) ws_gemv<NOUT, 2>(ring, q, inputs, units, out, xs);
        else if (ks == 4) ws_gemv<NOUT, 4>(ring, q, inputs, units, out, xs);
        else ws_gemv<NOUT, 8>(ring, q, inputs, units, out, xs);
    }

    // The grid barrier of decode_step_persistent among the consumer warps.
    __device__ __forceinline__ void ws_grid_arrive(unsigned* arrived, unsigned& target, unsigned long long* trace, int mark) {
        ws_consumer_sync();
        target += gridDim.x;
        if (threadIdx.x == 0) {
            if (trace) trace[2 * mark] = pd_now();
            __threadfence();
            atomicAdd(arrived, 1u);
        }
    }
    __device__ __forceinline__ void ws_grid_wait(unsigned* arrived, unsigned target, unsigned long long* trace, int mark) {
        if (threadIdx.x == 0) {
            unsigned seen;
            do { asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(arrived) : "memory"); } while (seen < target);
            if (trace) trace[2 * mark + 1] = pd_now();
        }
        ws_consumer_sync();
    }

    // pd_stage_norm among the consumers: the first 256 threads sum (rmsnorm_bf16's bits), all 480 scale.
    __device__ void ws_stage_norm(const float* x, const float* nw, float eps, int D, gemm_t* xs, float* red) {
        int tid = threadIdx.x;
        if (tid < DECODE_ATT_THREADS) {
            float s = 0.f;
            for (int i = tid; i < D; i += DECODE_ATT_THREADS) {
                float v = __ldcg(x + i);
                s += v * v;
            }
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
            if ((tid & 31) == 0) red[tid >> 5] = s;
            GroupSync{2}();
            if (tid < 32) {
                s = tid < (DECODE_ATT_THREADS >> 5) ? red[tid] : 0.f;
                for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
                if (tid == 0) red[8] = rsqrtf(s / D + eps);
            }
        }
        ws_consumer_sync();
        float scale = red[8];
        for (int i = tid; i < D; i += WS_CONSUMERS) xs[i] = to_gemm(__ldcg(x + i) * scale * nw[i]);
        ws_consumer_sync();
    }

    __device__ void ws_stage(const gemm_t* src, int n, gemm_t* xs) {
        for (int i = threadIdx.x * GEMV_VEC; i < n; i += WS_CONSUMERS * GEMV_VEC) *(uint4*)(xs + i) = __ldcg((const uint4*)(src + i));
        ws_consumer_sync();
    }

    extern "C" __global__ void __launch_bounds__(WS_THREADS, 1)
    decode_step_specialized(const LayerWeights* lw, float* x, float* q, float* kc, float* vc, bf16* k16, bf16* v16, gemm_t* attnB,
                            gemm_t* act, float* partials, int* counters, unsigned* sync_words, const int* pos, const int* row_block,
                            const int* row_slot, const int* row_table, const int* tables, const float* inv_freq, float eps, float scale,
                            int layers, int bs, int heads, int kvHeads, int hd, int D, int F, int max_splits, int xs_bytes,
                            int ring_offset, int slots, int ks_qkv, int ks_o, int ks_gu, int ks_down, unsigned long long* trace, int depth) {
        extern __shared__ __align__(128) unsigned char ws_shared[];
        __shared__ float red[16];
        pdl_wait();
        pdl_trigger();
        gemm_t* xs = (gemm_t*)ws_shared;
        float* att = (float*)(ws_shared + xs_bytes);
        WSRing ring;
        ring.data = ws_shared + ring_offset;
        ring.full = (unsigned long long*)(ring.data + (long)slots * WS_PIECE);
        ring.empty = ring.full + slots;
        ring.slots = slots;
        if (threadIdx.x == 0) {
            for (int s = 0; s < slots; s++) { mbar_init(ring.full + s, 1); mbar_init(ring.empty + s, 1); }
            asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        }
        __syncthreads();
        int QD = heads * hd, qkvUnits = (QD + 2 * kvHeads * hd) / 2;
        PDResidualOut residual = {x};
        SwiGLUOut swiglu = {act, F};
        RopeOut rope = {q, kc, vc, k16, v16, lw[0].bqkv, pos, inv_freq, row_block, row_slot, 0, layers, bs, heads, kvHeads, hd};
        if (threadIdx.x >= WS_CONSUMERS) {
            if (threadIdx.x == WS_CONSUMERS) {
                WSProducer pr;
                pr.depth = min(depth, slots);
                for (int l = 0; l < layers; l++) {
                    ws_produce<2>(ring, pr, lw[l].wqkv, D, qkvUnits, rope);
                    ws_produce<1>(ring, pr, lw[l].wo, QD, D, residual);
                    ws_produce<2>(ring, pr, lw[l].wgu, D, F, swiglu);
                    ws_produce<1>(ring, pr, lw[l].wdown, F, D, residual);
                }
            }
            return;  // the producer warp takes no part in the consumers' barriers
        }
        int qc = 0;
        unsigned target = 0;
        int mark = 0;
        if (trace) trace += (long)blockIdx.x * (5 * layers + 1) * 2;
        if (trace && threadIdx.x == 0) trace[1] = pd_now();
        bool attends = threadIdx.x < DECODE_ATT_THREADS;
        for (int l = 0; l < layers; l++) {
            const LayerWeights* w = lw + l;
            ws_stage_norm(x, w->attn_norm, eps, D, xs, red);
            ws_gemv_ks<2>(ring, qc, D, qkvUnits, ks_qkv, rope, xs);
            // While the grid meets: the attention block stages its split's past keys (decode_step_persistent's).
            int vb0 = blockIdx.x, staged = 0;
            ws_grid_arrive(sync_words, target, trace, ++mark);
            if (attends && vb0 < kvHeads * max_splits) {
                staged = decode_attention_past_keys(0, vb0 / kvHeads, pos);
                DecodeSplitKV kv(att, 0, vb0 % kvHeads, vb0 / kvHeads, row_table, tables, l, layers, bs, kvHeads, hd);
                decode_attention_stage_async(kv, threadIdx.x, 0, staged, kc, vc);
            }
            ws_grid_wait(sync_words, target, trace, mark);
            if (attends) {
                cp_async_wait<0>();
                for (int vb = vb0; vb < kvHeads * max_splits; vb += gridDim.x)
                    decode_attention_block<GroupSync, false>(GroupSync{2}, threadIdx.x, att, 0, vb % kvHeads, vb / kvHeads, q, kc, vc, partials,
                                           counters, attnB, pos, row_table, tables, l, layers, bs, heads, kvHeads, hd, scale, max_splits, 0L,
                                           vb == vb0 ? staged : 0);
            }
            ws_grid_arrive(sync_words, target, trace, ++mark);
            ws_grid_wait(sync_words, target, trace, mark);
            ws_stage(attnB, QD, xs);
            ws_gemv_ks<1>(ring, qc, QD, D, ks_o, residual, xs);
            ws_grid_arrive(sync_words, target, trace, ++mark);
            ws_grid_wait(sync_words, target, trace, mark);
            ws_stage_norm(x, w->ffn_norm, eps, D, xs, red);
            ws_gemv_ks<2>(ring, qc, D, F, ks_gu, swiglu, xs);
            ws_grid_arrive(sync_words, target, trace, ++mark);
            ws_grid_wait(sync_words, target, trace, mark);
            ws_stage(act, F, xs);
            ws_gemv_ks<1>(ring, qc, F, D, ks_down, residual, xs);
            if (l + 1 == layers) break;
            rope.layer = l + 1;
            rope.bias = lw[l + 1].bqkv;
            ws_grid_arrive(sync_words, target, trace, ++mark);
            ws_grid_wait(sync_words, target, trace, mark);
        }
        // pd_finish among the consumers.
        ws_consumer_sync();
        if (threadIdx.x == 0) {
            if (trace) trace[2 * 5 * layers] = pd_now();
            __threadfence();
            if (atomicAdd(sync_words + 1, 1u) == gridDim.x - 1) {
                sync_words[0] = 0;
                sync_words[1] = 0;
                __threadfence();
            }
        }
    }

    """#
}
