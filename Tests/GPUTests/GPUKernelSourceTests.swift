import Foundation
import Engine
import Models
import XCTest

@testable import CUDA
@testable import GPUModel

/// The GPU layer's parts that need no GPU: kernel source rules, launch-configuration math, the kernel cache key, the
/// launch-attribute layout handed to the driver, and the errors for a missing library.
final class GPUKernelSourceTests: XCTestCase {
    let source = GPUKernels.source

    /// Every kernel the Swift side looks up is defined in the source (directly or by one of its entry macros).
    func testEveryNamedKernelIsDefined() {
        XCTAssertEqual(Set(GPUKernels.names).count, GPUKernels.names.count, "kernel names are unique")
        for name in GPUKernels.names {
            let bounded = source.range(of: #"void __launch_bounds__\([^)]*\)\s+"# + name + #"\("#, options: .regularExpression) != nil
            let direct = source.contains("void \(name)(") || bounded || source.contains("MMA_ENTRY(\(name),")
            // A fused GEMV: its body in the FUSED_GEMVS macro, and an instantiation for its suffix.
            let base = GPUKernels.fusedGEMVs.first { name == $0 || name == $0 + GPUKernels.singleRowSuffix }
            let suffix = base.map { String(name.dropFirst($0.count)) } ?? ""
            let fused = base.map { source.contains("void \($0)##SUFFIX(") && source.contains("FUSED_GEMVS(\(suffix), ") } ?? false
            XCTAssertTrue(direct || fused, "\(name) is not defined in the kernel source")
        }
    }

    /// Every kernel waits for the previous one (programmatic dependent launch) before it reads its inputs: a plain
    /// kernel's first statement is pdl_wait(); the GEMV, tensor-core attention and SwiGLU bodies wait themselves.
    func testEveryKernelWaitsForThePreviousOne() throws {
        let definition = try NSRegularExpression(pattern: #"__global__ void (?:__launch_bounds__\([^)]*\)\s+)?(\w+)\([^)]*\)\s*\{\s*(?:(?:extern )?__shared__[^;]*;\s*)*([^;]*);"#)
        let matches = definition.matches(in: source, range: NSRange(source.startIndex..., in: source))
        XCTAssertGreaterThan(matches.count, 15)
        for match in matches {
            let name = String(source[Range(match.range(at: 1), in: source)!])
            let first = String(source[Range(match.range(at: 2), in: source)!])
            if name == "spin" { continue }  // reads nothing
            let waits = first == "pdl_wait()" || first.contains("gemv_core") || first.hasPrefix("int t0 = blockIdx.y")
                || first.contains("ResidualOut") || first.contains("StoreOut") || first.contains("SwiGLUOut") || first.contains("RopeOut")
                || first.hasPrefix("swiglu<") || first.contains("attention_mma<")
            XCTAssertTrue(waits, "\(name) starts with `\(first)` instead of pdl_wait()")
        }
        for body in ["__device__ void gemv_core(", "__device__ void attention_mma(", "__device__ __forceinline__ void swiglu("] {
            let start = try XCTUnwrap(source.range(of: body))
            let head = source[start.upperBound...].prefix(1200)
            XCTAssertTrue(head.contains("pdl_wait();"), "\(body) must wait before reading its inputs")
        }
    }

    /// Which prefill attention kernel runs, with how many threads and query heads per block.
    func testFlashKernelChoice() {
        let llama1B = GPULlama.flashKernel(headDim: 64, heads: 32, kvHeads: 8, gemmBytes: 2)
        XCTAssertEqual(llama1B.name, "attention_mma64_2")
        XCTAssertEqual(llama1B.threads, 256)
        XCTAssertEqual(llama1B.headsPerBlock, 2)
        XCTAssertEqual(llama1B.sharedBytes, 3 * 2 * 64 * 72 * 2)  // three stages of K and V, 64 keys, rows padded to 72
        let qwen7B = GPULlama.flashKernel(headDim: 128, heads: 28, kvHeads: 4, gemmBytes: 2)  // 7 query heads per K/V head
        XCTAssertEqual(qwen7B.name, "attention_mma128")
        XCTAssertEqual(qwen7B.threads, 128)
        XCTAssertEqual(qwen7B.headsPerBlock, 1)
        let fp32 = GPULlama.flashKernel(headDim: 64, heads: 32, kvHeads: 8, gemmBytes: 4)
        XCTAssertEqual(fp32.name, "attention_flash")
        XCTAssertEqual(fp32.sharedBytes, GPULlama.flashSharedBytes(headDim: 64))
        XCTAssertEqual(GPULlama.flashKernel(headDim: 96, heads: 8, kvHeads: 8, gemmBytes: 2).name, "attention_flash")
    }

    /// attention_decode's shared memory: K (padded by one float per row) and V of a 64-key split, the query heads of
    /// one K/V head, their scores, max and sum; within the 227 KiB an H100 block may opt into for Llama shapes.
    func testDecodeAttentionSharedMemory() {
        XCTAssertEqual(GPULlama.decodeAttentionSharedBytes(heads: 32, kvHeads: 8, headDim: 64), (64 * 68 + 64 * 64 + 4 * 64 + 4 * 64 + 8 + 1) * 4)
        XCTAssertLessThanOrEqual(GPULlama.decodeAttentionSharedBytes(heads: 64, kvHeads: 8, headDim: 128), 227 << 10)
    }

    /// Split bf16 inputs: steps of 9 to 64 rows (cuBLAS's range up to split attention's), bf16 mode only, twice the
    /// rows within the scratch buffers.
    func testSplitInputsRange() throws {
        var config = try ModelConfig(huggingFace: Self.fixture("tiny/llama/config.json"))
        config.hiddenSize = 2048; config.ffnSize = 8192; config.heads = 32; config.headDim = 64
        XCTAssertFalse(GPULlama.splitInputsFit(rows: 8, config: config, gemmBytes: 2, maxTokens: 2048))  // the GEMV's rows
        XCTAssertTrue(GPULlama.splitInputsFit(rows: 9, config: config, gemmBytes: 2, maxTokens: 2048))
        XCTAssertTrue(GPULlama.splitInputsFit(rows: 64, config: config, gemmBytes: 2, maxTokens: 2048))
        XCTAssertFalse(GPULlama.splitInputsFit(rows: 65, config: config, gemmBytes: 2, maxTokens: 2048))
        XCTAssertFalse(GPULlama.splitInputsFit(rows: 32, config: config, gemmBytes: 4, maxTokens: 2048))  // fp32 inputs are exact
        XCTAssertFalse(GPULlama.splitInputsFit(rows: 40, config: config, gemmBytes: 2, maxTokens: 64))
        config.hiddenSize = 2044  // QKV and gate|up (2044 inputs) on cuBLAS at 4 rows, o and down still the GEMV: no split
        XCTAssertFalse(GPULlama.splitInputsFit(rows: 4, config: config, gemmBytes: 2, maxTokens: 2048))
    }

    /// The scratch buffers serve sizes the KV cache around: Llama-3.2-1B's shapes, 2048 rows, 256 rows of logits.
    func testScratchBytes() throws {
        var config = try ModelConfig(huggingFace: Self.fixture("tiny/llama/config.json"))
        config.layers = 16; config.hiddenSize = 2048; config.ffnSize = 8192; config.heads = 32; config.kvHeads = 8; config.headDim = 64
        config.vocabSize = 128256
        let T = 2048
        let rows = T * 2048 * 4 + T * 2048 * 2 + T * 3072 * 4 + T * 2048 * 4 + T * 2048 * 2 + T * 16384 * 4 + T * 8192 * 2 + T * 2048 * 4
        let logits = 256 * 2048 * 4 + 256 * 128256 * 4
        XCTAssertEqual(GPULlama.scratchBytes(config, maxTokens: T, maxLogitRows: 256), rows + logits + 4 * (10 * T + 16) + (64 << 20))
        // the gate|up output (fp32, both halves) is the largest row buffer: 128 KiB a row here
        XCTAssertEqual(GPULlama.scratchSizes(config, maxTokens: 1, maxLogitRows: 1, numBlocks: 0, gemmBytes: 2).gateUp, 2 * 8192 * 4)
    }

    /// A token's KV cache on the GPU: fp32 K and V per layer, plus the bf16 shadow where prefill runs on tensor cores.
    func testCacheBytesPerToken() throws {
        var config = try ModelConfig(huggingFace: Self.fixture("tiny/llama/config.json"))
        config.layers = 16; config.heads = 32; config.kvHeads = 8; config.headDim = 64
        XCTAssertEqual(GPULlama.cacheBytesPerToken(config, batchInvariant: false), 16 * 2 * 512 * (4 + 2))
        XCTAssertEqual(GPULlama.cacheBytesPerToken(config, gemmBytes: 4, batchInvariant: false), 16 * 2 * 512 * 4)
        XCTAssertEqual(GPULlama.cacheBytesPerToken(config, batchInvariant: true), 16 * 2 * 512 * 4)  // its attention reads fp32
        config.headDim = 96  // CUDA-core prefill attention: no shadow
        XCTAssertEqual(GPULlama.cacheBytesPerToken(config, batchInvariant: false), 16 * 2 * 8 * 96 * 4)
    }

    /// The fused decode GEMVs run for up to 8 rows whose normalized copies fit the shared memory opted into.
    func testFusedGEMVLimits() throws {
        var config = try ModelConfig(huggingFace: Self.fixture("tiny/llama/config.json"))
        config.hiddenSize = 2048; config.ffnSize = 8192; config.heads = 32; config.headDim = 64
        XCTAssertTrue(GPULlama.fusedGEMVFits(rows: 1, config: config, gemmBytes: 2))
        XCTAssertTrue(GPULlama.fusedGEMVFits(rows: 8, config: config, gemmBytes: 4))  // 64 KiB of fp32 rows
        XCTAssertFalse(GPULlama.fusedGEMVFits(rows: 9, config: config, gemmBytes: 2))
        config.hiddenSize = 8192
        XCTAssertFalse(GPULlama.fusedGEMVFits(rows: 8, config: config, gemmBytes: 2))  // 128 KiB > 96 KiB
        XCTAssertTrue(GPULlama.fusedGEMVFits(rows: 4, config: config, gemmBytes: 2))
        config.hiddenSize = 2052
        XCTAssertFalse(GPULlama.fusedGEMVFits(rows: 1, config: config, gemmBytes: 2))  // 16-byte loads need multiples of 8
    }

    /// The GEMV's warps per output: decided by the weight matrix's shape alone (so fused and separate kernels agree).
    func testGEMVSplit() {
        XCTAssertEqual(GPUGemm.split(inputs: 2048, outputs: 3072), 2)     // QKV
        XCTAssertEqual(GPUGemm.split(inputs: 2048, outputs: 2048), 2)     // o
        XCTAssertEqual(GPUGemm.split(inputs: 8192, outputs: 2048), 8)     // down
        XCTAssertEqual(GPUGemm.split(inputs: 2048, outputs: 16384), 1)    // gate|up
        XCTAssertEqual(GPUGemm.split(inputs: 2048, outputs: 128256), 1)   // vocabulary
        XCTAssertEqual(GPUGemm.split(inputs: 512, outputs: 64), 1)
        XCTAssertEqual(GPUGemm.blocks(units: 2048, split: 8), 2048)
        XCTAssertEqual(GPUGemm.blocks(units: 5, split: 1), 1)
        XCTAssertTrue(source.contains("int unit = blockIdx.x * (8 / ks) + warp / ks, part = warp % ks"))
    }

    /// Cubins are cached by source, architecture and options.
    func testKernelCacheKey() {
        let key = GPUContext.cacheKey(source: "a", arch: 90, options: ["--fmad=false"])
        XCTAssertEqual(key.count, 64)
        XCTAssertEqual(key, GPUContext.cacheKey(source: "a", arch: 90, options: ["--fmad=false"]))
        XCTAssertNotEqual(key, GPUContext.cacheKey(source: "b", arch: 90, options: ["--fmad=false"]))
        XCTAssertNotEqual(key, GPUContext.cacheKey(source: "a", arch: 80, options: ["--fmad=false"]))
        XCTAssertNotEqual(key, GPUContext.cacheKey(source: "a", arch: 90, options: ["--fmad=false", "-DGEMM_FP32"]))
    }

    /// draw_rows' parameters as GPUDraw writes them, at the offsets of the kernel's DrawParams.
    func testDrawParamsLayout() throws {
        let source = GPUKernels.samplingSource
        XCTAssertTrue(source.contains("float inverseTemperature, topP, minP, uniform;"))
        XCTAssertTrue(source.contains("int topK, row, out, penaltyCount;"))
        XCTAssertTrue(source.contains("float repetition, frequency, presence;\n    int penaltyStart;\n    int topLogprobs, logprobSlot, unused0, unused1;"))
        XCTAssertTrue(source.contains("#define DRAW_LOGPROB_WORDS \(GPUDraw.logprobWords)"))
        XCTAssertEqual(GPUDraw.stride, 64)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2 * GPUDraw.stride, alignment: 16)
        defer { buffer.deallocate() }
        let draw = DeviceDraw(inverseTemperature: 1.25, topK: 40, topP: 0.9, minP: 0.05, uniform: 0.5)
        GPUDraw.write(draw, row: 7, outIndex: 3, at: 1, into: buffer)
        XCTAssertEqual((buffer + GPUDraw.stride).load(fromByteOffset: 28, as: Int32.self), 0)  // no penalties
        XCTAssertEqual((buffer + GPUDraw.stride).load(fromByteOffset: 32, as: Float.self), 1)
        var penalized = draw
        penalized.penalties = Penalties(repetition: 1.2, frequency: 0.5, presence: -0.25, prompt: [1], output: [2])
        GPUDraw.write(penalized, row: 7, outIndex: 3, penaltyEntries: 10..<14, at: 0, into: buffer)
        XCTAssertEqual(buffer.load(fromByteOffset: 28, as: Int32.self), 4)
        XCTAssertEqual(buffer.load(fromByteOffset: 32, as: Float.self), 1.2)
        XCTAssertEqual(buffer.load(fromByteOffset: 36, as: Float.self), 0.5)
        XCTAssertEqual(buffer.load(fromByteOffset: 40, as: Float.self), -0.25)
        XCTAssertEqual(buffer.load(fromByteOffset: 44, as: Int32.self), 10)
        XCTAssertEqual(buffer.load(fromByteOffset: 48, as: Int32.self), -1)  // no log-probabilities
        penalized.logprobs = 30
        GPUDraw.write(penalized, row: 7, outIndex: 3, logprobSlot: 5, at: 0, into: buffer)
        XCTAssertEqual(buffer.load(fromByteOffset: 48, as: Int32.self), 20)  // at most maxTopLogprobs
        XCTAssertEqual(buffer.load(fromByteOffset: 52, as: Int32.self), 5)
        // A slot as the kernel writes it: pairs in id order, read back most likely first, equal values by id.
        var slot = [Float](repeating: 0, count: GPUDraw.logprobWords)
        slot[0] = -0.5
        slot[1] = Float(bitPattern: 3)
        for (k, pair) in [(4, Float(-2)), (9, -1), (12, -2)].enumerated() {
            slot[2 + 2 * k] = Float(bitPattern: UInt32(pair.0))
            slot[3 + 2 * k] = pair.1
        }
        let parsed = slot.withUnsafeBufferPointer { GPUDraw.parseLogprobs($0.baseAddress!) }
        XCTAssertEqual(parsed.logprob, -0.5)
        XCTAssertEqual(parsed.top.map(\.token), [9, 4, 12])
        XCTAssertEqual(parsed.top.map(\.logprob), [-1, -2, -2])
        let p = buffer + GPUDraw.stride
        XCTAssertEqual(p.load(fromByteOffset: 0, as: Float.self), 1.25)
        XCTAssertEqual(p.load(fromByteOffset: 4, as: Float.self), 0.9)
        XCTAssertEqual(p.load(fromByteOffset: 8, as: Float.self), 0.05)
        XCTAssertEqual(p.load(fromByteOffset: 12, as: Float.self), 0.5)
        XCTAssertEqual(p.load(fromByteOffset: 16, as: Int32.self), 40)
        XCTAssertEqual(p.load(fromByteOffset: 20, as: Int32.self), 7)
        XCTAssertEqual(p.load(fromByteOffset: 24, as: Int32.self), 3)
        GPUDraw.write(DeviceDraw(inverseTemperature: 1, topK: Int.max, topP: 1, minP: 0, uniform: 0), row: 0, outIndex: 0, at: 0, into: buffer)
        XCTAssertEqual(buffer.load(fromByteOffset: 16, as: Int32.self), Int32.max)  // clamped, not trapped
    }

    /// draw_rows' launch shape: a lone row spread over many blocks, many rows one group each, never more blocks than
    /// SMs (they wait for each other), and never more keys to a block than its shared memory holds.
    func testDrawLaunchPlan() {
        let vocab = 128_256, capacity = (220 << 10) / 4
        XCTAssertEqual(GPUDraw.plan(draws: 1, vocab: vocab, capacity: capacity, multiprocessors: 132).slices, GPUDraw.maxSlices)
        let b32 = GPUDraw.plan(draws: 32, vocab: vocab, capacity: capacity, multiprocessors: 132)
        XCTAssertEqual(b32.slices, 4)
        XCTAssertEqual(b32.groups, 32)
        for draws in [1, 2, 7, 32, 33, 64, 200, 256] {
            for (sms, cap) in [(132, capacity), (108, (160 << 10) / 4), (40, (44 << 10) / 4), (12, (44 << 10) / 4)] {
                let p = GPUDraw.plan(draws: draws, vocab: vocab, capacity: cap, multiprocessors: sms)
                XCTAssertLessThanOrEqual(p.slices * p.groups, sms, "\(draws) draws on \(sms) SMs")
                XCTAssertLessThanOrEqual((vocab + p.slices - 1) / p.slices, cap)
                XCTAssertGreaterThanOrEqual(p.groups, 1)
                XCTAssertLessThanOrEqual(p.groups, draws)
            }
        }
        // Where the row does not fit the shared memory of every SM, GPUDraw.make declines (rows go to the host).
        XCTAssertGreaterThan(GPUDraw.slicesNeeded(vocab: vocab, capacity: (44 << 10) / 4), 11)
        // A small vocabulary keeps at least minSliceKeys to a block.
        XCTAssertEqual(GPUDraw.plan(draws: 1, vocab: 4096, capacity: capacity, multiprocessors: 132).slices, 2)
        XCTAssertEqual(GPUDraw.plan(draws: 1, vocab: 256, capacity: capacity, multiprocessors: 132).slices, 1)
    }

    /// The pairs a penalized draw sends to the device: one per distinct token (the prompt's only where the
    /// repetition penalty applies), each with its count in the output, ids outside the vocabulary skipped; applied
    /// with Penalties.apply (draw_penalized's arithmetic), they give the host sampler's penalized row, bit for
    /// bit. The scratch is reused from draw to draw.
    func testPenaltyPairs() {
        let vocab = 500
        var pairs = PenaltyPairs(vocab: vocab)
        let buffer = UnsafeMutablePointer<Int32>.allocate(capacity: 2 * 2000)
        defer { buffer.deallocate() }
        var generator = SystemRandomNumberGenerator()
        var reference = ReferenceSampler()
        var start = 0
        for trial in 0..<30 {
            let prompt = (0..<Int.random(in: 0...200, using: &generator)).map { _ in Int.random(in: -3..<(vocab + 3), using: &generator) }
            let output = (0..<Int.random(in: 0...60, using: &generator)).map { _ in Int.random(in: -3..<(vocab + 3), using: &generator) }
            var params = SamplingParams()
            params.repetitionPenalty = trial % 3 == 0 ? 1 : Float.random(in: 0.5...2, using: &generator)
            params.frequencyPenalty = trial % 4 == 1 ? 0 : Float.random(in: -1...1, using: &generator)
            params.presencePenalty = trial % 5 == 2 ? 0 : Float.random(in: -1...1, using: &generator)
            let penalties = Penalties(repetition: params.repetitionPenalty, frequency: params.frequencyPenalty,
                                            presence: params.presencePenalty, prompt: prompt, output: output)
            let end = pairs.write(penalties, into: buffer, at: start)
            let written = (start..<end).map { (Int(buffer[2 * $0]), Int(buffer[2 * $0 + 1])) }
            let touched = Set(output + (params.repetitionPenalty != 1 ? prompt : [])).filter { $0 >= 0 && $0 < vocab }
            XCTAssertEqual(Set(written.map(\.0)), touched, "trial \(trial)")
            XCTAssertEqual(written.count, touched.count)
            for (t, c) in written { XCTAssertEqual(c, output.count { $0 == t }) }
            let row = (0..<vocab).map { _ in Float.random(in: -8...8, using: &generator) }
            var device = row
            for (t, c) in written { device[t] = penalties.apply(row[t], count: c) }
            let host = reference.penalized(row[...], params: params, prompt: prompt, output: output)
            XCTAssertEqual(device.map(\.bitPattern), host.map(\.bitPattern), "trial \(trial)")
            start = end % 1000
        }
    }

    /// The CUlaunchConfig + CUlaunchAttribute bytes given to cuLaunchKernelEx, at the driver header's offsets: one
    /// 72-byte attribute per id (cooperative 2, programmatic stream serialization 6), each set to 1.
    func testLaunchConfigLayout() {
        let stream = OpaquePointer(bitPattern: 0x1234_5678)
        let result = GPUContext.withLaunchConfig(grid: (7, 2, 1), block: (256, 1, 1), sharedBytes: 4096, stream: stream, attributes: [2, 6]) { config in
            XCTAssertEqual((0..<7).map { config.load(fromByteOffset: 4 * $0, as: UInt32.self) }, [7, 2, 1, 256, 1, 1, 4096])
            XCTAssertEqual(config.load(fromByteOffset: 32, as: UInt.self), 0x1234_5678)
            let attributes = config.load(fromByteOffset: 40, as: UnsafeRawPointer.self)
            XCTAssertEqual(attributes, config + 56)
            XCTAssertEqual(config.load(fromByteOffset: 48, as: UInt32.self), 2)
            XCTAssertEqual(attributes.load(as: Int32.self), 2)  // CU_LAUNCH_ATTRIBUTE_COOPERATIVE
            XCTAssertEqual(attributes.load(fromByteOffset: 8, as: Int32.self), 1)
            XCTAssertEqual(attributes.load(fromByteOffset: 72, as: Int32.self), 6)  // CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
            XCTAssertEqual(attributes.load(fromByteOffset: 80, as: Int32.self), 1)
            return 42
        }
        XCTAssertEqual(result, 42)
    }

    /// decode_step_persistent's shared memory for Llama-3.2-1B's shape: the 8192-wide bf16 input row, two
    /// decode-attention blocks (16-byte rounded), 16 warps' rings of 8 slots × 32 lanes × 16 bytes; within the
    /// 227 KiB an H100 block may opt into.
    func testPersistentDecodeSharedMemory() throws {
        var config = try ModelConfig(huggingFace: Self.fixture("tiny/llama/config.json"))
        (config.hiddenSize, config.heads, config.kvHeads, config.headDim, config.ffnSize) = (2048, 32, 8, 64, 8192)
        let shared = GPULlama.persistentDecodeShared(config, gemmBytes: 2)
        let attention = GPULlama.decodeAttentionSharedBytes(heads: 32, kvHeads: 8, headDim: 64)
        XCTAssertEqual(shared.inputBytes, 8192 * 2)
        XCTAssertEqual(shared.attentionFloats * 4, (attention + 15) / 16 * 16)
        XCTAssertEqual(shared.total, 8192 * 2 + 2 * shared.attentionFloats * 4 + 16 * 8 * 32 * 16)
        XCTAssertLessThanOrEqual(shared.total, 227 << 10)
        // The Swift side's sizes are the kernel's.
        XCTAssertTrue(GPUKernels.source.contains("#define PD_SUBS \(GPULlama.persistentSubBlocks)\n"))
        XCTAssertTrue(GPUKernels.source.contains("#define PD_STAGES \(GPULlama.persistentStages)\n"))
        XCTAssertTrue(GPUKernels.source.contains("#define ATT_KPAD \(GPULlama.attentionKeyPad)\n"))
    }

    /// The persistent kernel's trace reduced per phase kind: two blocks, one layer, times chosen by hand.
    func testPersistentTraceReduction() {
        // Per block: (arrival, departure) of barriers 0...5; barrier 0's departure is the start, barrier 5's arrival the end.
        let block0: [UInt64] = [0, 100, 200, 250, 300, 320, 400, 410, 500, 520, 600, 0]
        let block1: [UInt64] = [0, 110, 230, 251, 290, 321, 380, 412, 505, 519, 650, 0]
        XCTAssertEqual(PersistentTrace.words(blocks: 2, layers: 1), 24)
        var trace = PersistentTrace()
        trace.add(block0 + block1, blocks: 2, layers: 1)
        XCTAssertEqual(trace.total, 550)
        XCTAssertEqual(trace.mean, [110, 44.5, 69.5, 91.5, 105.5])
        XCTAssertEqual(trace.slowest, [120, 50, 80, 93, 131])
        XCTAssertEqual(trace.barrier, [21, 21, 12, 15, 0])  // the last phase ends the kernel, not at a barrier
        trace.add(block0 + block1, blocks: 2, layers: 1)
        XCTAssertEqual(trace.total, 1100)
        XCTAssertEqual(trace.steps, 2)
    }

    /// A missing library is an error naming what was looked for and where.
    func testMissingLibraryIsNamed() {
        XCTAssertThrowsError(try DynamicLibrary(names: ["libswiftwise-no-such-library.so.7"], what: "the test library")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("the test library not found"), text)
            XCTAssertTrue(text.contains("libswiftwise-no-such-library.so.7"), text)
        }
    }

    static func fixture(_ path: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/\(path)").path
    }
}
