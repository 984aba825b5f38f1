import ArgumentParser
import CUDA
import Engine
import Foundation
import GPUModel
import Models
import ServiceKit

/// `swiftwise gpu-check MODEL`: the GPU backend against references on a CUDA machine — logits vs transformers'
/// (a JSON written by scripts/gpu-check.py) and vs our CPU path, greedy agreement, and speed.
struct GPUCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu-check", abstract: "Check and time the GPU backend on a checkpoint (needs an NVIDIA GPU).")

    @Argument(help: "A GGUF file or a Hugging Face folder.") var model: String
    @Option(help: "JSON with prompt_ids, last_logits, argmax and greedy_ids from transformers.") var reference: String?
    @Flag(help: "Also compare the prompt's logits with the CPU path.") var cpu = false
    @Flag(help: "Time decode (batch 1 and 32, prompt 512, 256 new tokens) and a 2,048-token prefill.") var bench = false
    @Flag(help: "With --bench: only the persistent kernel against the fused kernels (bit for bit), batch-1 decode three times and the persistent kernel's phase table (for iterating on that kernel; no draw checks).")
    var quick = false
    @Flag(help: "GPU time of every operation of a batch-1 and a batch-32 decode step and a 2,048-token prefill (events), and cuBLAS at the prefill shapes.") var profile = false
    @Flag(help: "Only time decode through the engine (greedy and sampled, batch 1 and 32), after the mixed-step check.") var engine = false
    @Option(help: "Write results as JSON here.") var json: String?
    @Flag(help: "fp32 weights and GEMMs (checks the kernels against the CPU path at fp32 precision).") var fp32 = false

    @Flag(help: "No GPU: compare only our CPU path with the reference.") var cpuOnly = false
    @Flag(help: "Run the op-by-op harness (each kernel against the Double reference) on the CPU and the GPU, then stop.") var ops = false

    func run() throws {
        if ops {
            var backends: [any OpBackend] = [CPUOps()]
            if !cpuOnly {
                let gpu = try GPUContext()
                backends += [try GPUOps(gpu: gpu, fp32: fp32), try GPUOps(gpu: gpu, fp32: fp32, attention: .flash),
                             try GPUOps(gpu: gpu, fp32: fp32, attention: .decode)]
                if !fp32 { backends.append(try GPUOps(gpu: gpu, fp32: false, attention: .decode, splitInputs: true)) }
            }
            var failed = false
            for backend in backends {
                let split = (backend as? GPUOps)?.splitInputs == true
                let checks = try OpHarness.run(backend, tolerances: backend is CPUOps || fp32 ? .fp32 : split ? .splitInputs : .bf16)
                print(OpHarness.report(checks, backend: backend.name))
                failed = failed || checks.contains { !$0.passed }
            }
            if failed { throw ExitCode.failure }
            return
        }
        if cpuOnly {
            let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reference ?? ""))) as! [String: Any]
            let prompt = ref["prompt_ids"] as! [Int]
            let expected = (ref["last_logits"] as! [Double]).map(Float.init)
            let checkpoint = try LlamaCheckpoint.open(model)
            let cpuModel = try LlamaModel(checkpoint: checkpoint)
            let last = cpuModel.forward(prompt, cache: KVCache(config: checkpoint.config, capacity: prompt.count))
            let error = zip(last, expected).map { abs($0 - $1) }.max()! / expected.map(abs).max()!
            print(String(format: "CPU path vs reference: last-position logits relative error %.2e; argmax %d vs %d", error,
                         Logits.argmax(last[...]), Logits.argmax(expected[...])))
            return
        }
        let gpu = try GPUContext()
        let memory = gpu.memory
        var results: [String: Any] = ["device": gpu.name, "compute_capability": gpu.computeCapability, "multiprocessors": gpu.multiprocessors]
        print("device: \(gpu.name), sm_\(gpu.computeCapability), \(gpu.multiprocessors) SMs, \(memory.free >> 20) MiB free of \(memory.total >> 20)")
        let checkpoint = try LlamaCheckpoint.open(model)
        let c = checkpoint.config
        let blockSize = 16
        let start = ContinuousClock.now
        let llama = try GPULlama(checkpoint: checkpoint, gpu: gpu, blockSize: blockSize, numBlocks: 32 * 800 / blockSize + 2200 / blockSize + 64,
                                 maxTokens: 2048, maxLogitRows: 64, fp32: fp32)
        print("kernel launches checked against the kernels' parameter counts: \(llama.launchesChecked ? "yes" : "no (the driver cannot tell)")")
        print("loaded \(c.architecture) \(c.layers) layers, hidden \(c.hiddenSize), vocab \(c.vocabSize): \(llama.weightBytes >> 20) MiB of \(fp32 ? "fp32" : "bf16") weights in \(ms(ContinuousClock.now - start)) ms")
        results["weight_bytes"] = llama.weightBytes
        results["mixed_step_differing_values"] = try Self.mixedStepCheck(llama)
        if !fp32 && !(bench && quick) {  // a failing draw check is reported and the rest still runs
            do { results["device_draws"] = try Self.deviceDrawCheck(llama) } catch {
                print("draw_rows check failed: \(error)")
                results["device_draws"] = ["error": "\(error)"]
            }
            do { results["device_logprobs"] = try Self.deviceLogprobCheck(llama) } catch {
                print("draw_rows log-probability check failed: \(error)")
                results["device_logprobs"] = ["error": "\(error)"]
            }
        }
        if engine {
            results["engine_decode_tok_s"] = try Self.engineRates(llama)
            if let json {
                try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: json))
            }
            return
        }

        if let reference {
            let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reference))) as! [String: Any]
            let prompt = ref["prompt_ids"] as! [Int]
            let expected = (ref["last_logits"] as! [Double]).map(Float.init)
            let argmax = ref["argmax"] as! [Int]
            let greedy = ref["greedy_ids"] as! [Int]
            let table = Array(0..<(prompt.count + greedy.count + blockSize) / blockSize)
            let logits = try llama.forward([SequenceStep(tokens: prompt, start: 0, blockTable: table, logits: .all)])
            let V = c.vocabSize
            let last = Array(logits[(prompt.count - 1) * V..<prompt.count * V])
            let error = zip(last, expected).map { abs($0 - $1) }.max()! / expected.map(abs).max()!
            let hostPicks = Logits.argmaxes(logits, rowLength: V)
            let agree = zip(hostPicks, argmax).filter { $0 == $1 }.count
            print(String(format: "vs transformers: last-position logits relative error %.2e; per-position argmax agreement %d/%d", error, agree, prompt.count))
            // Greedy sampling on the device (argmax_rows) must pick what the host picks from the downloaded logits:
            // every prompt row, then every decode step.
            let promptPicks = try llama.forwardArgmax([SequenceStep(tokens: prompt, start: 0, blockTable: table, logits: .all)])
            var argmaxDiffers = zip(promptPicks, hostPicks).filter { $0 != $1 }.count
            var ours: [Int] = []
            var next = Logits.argmax(last[...])
            for i in 0..<greedy.count {
                ours.append(next)
                let step = [SequenceStep(tokens: [next], start: prompt.count + i, blockTable: table, logits: .last)]
                let out = try llama.forward(step)
                next = Logits.argmax(out[...])
                if try llama.forwardArgmax(step) != [next] { argmaxDiffers += 1 }
            }
            print("argmax on the GPU vs the host's argmax of the downloaded logits: \(argmaxDiffers) of \(prompt.count + greedy.count) rows differ")
            results["gpu_argmax_differing_rows"] = argmaxDiffers
            // The fused decode kernels must compute exactly what the separate ones do: one row and five rows, compared bit for bit.
            var fusionDiffers = 0
            for rowsInStep in [1, 5] {
                let step = [SequenceStep(tokens: Array(ours.prefix(rowsInStep)), start: prompt.count, blockTable: table, logits: .all)]
                let fusedLogits = try llama.forward(step)
                llama.fusedDecode = false
                let separateLogits = try llama.forward(step)
                llama.fusedDecode = true
                let differing = zip(fusedLogits, separateLogits).filter { $0.bitPattern != $1.bitPattern }.count
                print("fused decode kernels vs separate kernels, \(rowsInStep) row(s): \(differing) of \(fusedLogits.count) logits differ")
                fusionDiffers += differing
            }
            results["fused_vs_separate_differing_logits"] = fusionDiffers
            // The persistent decode kernel, in every shape, must compute exactly what the fused kernels do, launched one by one.
            let oneRow = [SequenceStep(tokens: [ours[0]], start: prompt.count, blockTable: table, logits: .last)]
            let persistent = try Self.persistentDiffering(llama, oneRow)
            print("persistent decode kernel (\(llama.persistentDecodeUse)) vs the fused kernels one by one, 1 row: "
                  + "\(persistent.differing) of \(persistent.of) logits differ")
            results["persistent_vs_fused_differing_logits"] = persistent.differing
            results["persistent_decode_available"] = llama.persistentDecodeAvailable
            let prefix = zip(ours, greedy).prefix { $0 == $1 }.count
            let same = zip(ours, greedy).filter { $0 == $1 }.count
            print("greedy continuation: first \(prefix) of \(greedy.count) tokens identical, \(same) equal overall")
            results["logits_relative_error"] = error
            results["argmax_agreement"] = Double(agree) / Double(prompt.count)
            results["greedy_identical_prefix"] = prefix
            results["greedy_equal"] = same

            if cpu {
                let cpuModel = try LlamaModel(checkpoint: checkpoint)
                let cache = KVCache(config: c, capacity: prompt.count)
                let cpuLast = cpuModel.forward(prompt, cache: cache)
                let cpuError = zip(last, cpuLast).map { abs($0 - $1) }.max()! / cpuLast.map(abs).max()!
                print(String(format: "vs our CPU path (fp32): last-position logits relative error %.2e", cpuError))
                results["cpu_relative_error"] = cpuError
            }
        }

        if bench {
            results["bench"] = try Self.bench(llama, c, quick: quick)
        }
        if profile {
            results["profile"] = try Self.profile(llama)
        }
        if let json {
            try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: json))
        }
    }

    /// Logits of `step` from the persistent decode kernel that differ, bit for bit, from the fused kernels' launched
    /// one by one (the step runs twice, writing the same cache entries; the persistent kernel is left on).
    static func persistentDiffering(_ llama: GPULlama, _ step: [SequenceStep]) throws -> (differing: Int, of: Int) {
        llama.persistentDecode = false
        let oneByOne = try llama.forward(step)
        llama.persistentDecode = true
        let persistent = try llama.forward(step)
        return (zip(persistent, oneByOne).filter { $0.bitPattern != $1.bitPattern }.count, persistent.count)
    }

    static func bench(_ llama: GPULlama, _ c: ModelConfig, quick: Bool) throws -> [String: Any] {
        var out: [String: Any] = [:]
        let dependentLaunch = llama.gpu.dependentLaunch
        func decodeRate(batch: Int, prompt: Int, steps: Int, logits: Bool = false) throws -> Double {
            let step = try decodeSteps(llama, batch: batch, prompt: prompt, steps: steps, logits: logits)
            // The prompts' prefill is not a decode step. Until session 14 its GPU time was counted too: for batch 32,
            // 32 prompts of 512 tokens over 64 steps, which is about the 1.3 ms a step by which the events exceeded
            // the wall time (inferred from the code; not yet rerun on a GPU).
            llama.stepGPUSeconds = 0
            let start = ContinuousClock.now
            for s in 0..<steps { try step(s) }
            return Double(batch * steps) / (ContinuousClock.now - start).seconds
        }
        if quick {
            // Bit for bit against the fused kernels one by one, as the reference check does (which --quick may go without).
            let step = try decodeSteps(llama, batch: 1, prompt: 512, steps: 1, logits: true)
            llama.persistentDecode = false
            try step(0)
            let next = [SequenceStep(tokens: [7], start: 513, blockTable: Array(0...513 / llama.blockSize), logits: .last)]
            let persistent = try persistentDiffering(llama, next)
            print("persistent decode kernel (\(llama.persistentDecodeUse)) vs the fused kernels one by one, 1 row at 513: \(persistent.differing) of \(persistent.of) logits differ")
            out["persistent_vs_fused_differing_logits"] = persistent.differing
            let rates = try (0..<3).map { _ in try decodeRate(batch: 1, prompt: 512, steps: 256) }
            print("decode batch 1, three runs: \(rates.map { String(format: "%.1f", $0) }.joined(separator: " ")) tok/s")
            out["decode_batch1_runs"] = rates
            out["persistent_phases"] = try persistentPhases(llama)
            return out
        }
        // Batch 1 also with the other programmatic-dependent-launch setting (sm_90+) and without the fused kernels.
        llama.gpu.dependentLaunch = !dependentLaunch && llama.gpu.computeCapability >= 90
        let otherPDL = try decodeRate(batch: 1, prompt: 512, steps: 256)
        llama.gpu.dependentLaunch = dependentLaunch
        llama.fusedDecode = false
        let separate = try decodeRate(batch: 1, prompt: 512, steps: 256)
        llama.fusedDecode = true
        llama.persistentDecode = false
        let oneByOne = try decodeRate(batch: 1, prompt: 512, steps: 256)
        llama.persistentDecode = true
        llama.gpu.dependentLaunch = dependentLaunch
        let one = try decodeRate(batch: 1, prompt: 512, steps: 256)
        llama.measureStepGPUTime = true
        let measured = try decodeRate(batch: 1, prompt: 512, steps: 256)
        let gpuPerStep = llama.stepGPUSeconds / 256
        let many = try decodeRate(batch: 32, prompt: 512, steps: 64)
        let manyGPUPerStep = llama.stepGPUSeconds / 64
        llama.measureStepGPUTime = false
        // What sampling on the host costs: the same steps with every logits row downloaded.
        let oneLogits = try decodeRate(batch: 1, prompt: 512, steps: 256, logits: true)
        let manyLogits = try decodeRate(batch: 32, prompt: 512, steps: 64, logits: true)
        // Prefill: best of 3 after a warm-up of the same size (cuBLAS loads its kernels for a shape on first use).
        let prompt = (0..<2048).map { 100 + ($0 * 17) % 30000 }
        var prefill = Double.infinity
        for _ in 0..<4 {
            let t0 = ContinuousClock.now
            _ = try llama.forward([SequenceStep(tokens: prompt, start: 0, blockTable: Array(0..<2048 / llama.blockSize + 1), logits: .last)])
            prefill = min(prefill, (ContinuousClock.now - t0).seconds)
        }
        let flops = 2.0 * Double(llama.weightBytes / llama.gemmBytes) * 2048
        let bandwidth = try deviceCopyBandwidth(llama.gpu)
        print(String(format: "decode batch 1: %.1f tok/s (%.1f GB/s of weights = %.0f%% of the %.0f GB/s device copy bandwidth)",
                     one, one * Double(llama.weightBytes) / 1e9, 100 * one * Double(llama.weightBytes) / 1e9 / bandwidth, bandwidth))
        print(String(format: "decode batch 1 %@ programmatic dependent launch: %.1f tok/s; with the separate (unfused) kernels: %.1f tok/s",
                     dependentLaunch ? "without" : "with", otherPDL, separate))
        print(String(format: "decode batch 1 with the fused kernels launched one by one (no persistent kernel): %.1f tok/s (%.0f%% of the copy bandwidth)",
                     oneByOne, 100 * oneByOne * Double(llama.weightBytes) / 1e9 / bandwidth))
        print(String(format: "decode batch 1 step: %.3f ms of GPU time (events around the step's kernels) of %.3f ms wall (%.1f tok/s in that run)",
                     gpuPerStep * 1000, 1000 / measured, measured))
        print(String(format: "decode batch 32: %.1f tok/s (a step: %.3f ms of GPU time of %.3f ms wall)", many, manyGPUPerStep * 1000, 32000 / many))
        print(String(format: "decode with the logits downloaded (sampling on the host; above, greedy on the GPU): batch 1 %.1f tok/s, batch 32 %.1f tok/s",
                     oneLogits, manyLogits))
        let peak = try cublasPeak(llama.gpu)
        print(String(format: "prefill 2048 tokens: %.1f ms (%.1f TFLOP/s in the weight GEMMs = %.0f%% of the %.0f TFLOP/s cuBLAS bf16 peak measured now)",
                     prefill * 1000, flops / prefill / 1e12, 100 * flops / prefill / 1e12 / peak, peak))
        out["engine_decode_tok_s"] = try engineRates(llama)
        out["decode_batch1_tok_s"] = one
        out["decode_batch32_tok_s"] = many
        out["decode_batch1_\(dependentLaunch ? "without" : "with")_pdl_tok_s"] = otherPDL
        out["decode_batch1_gpu_ms_per_step"] = gpuPerStep * 1000
        out["decode_batch32_gpu_ms_per_step"] = manyGPUPerStep * 1000
        out["decode_batch1_separate_kernels_tok_s"] = separate
        out["decode_batch1_no_persistent_tok_s"] = oneByOne
        out["decode_batch1_logits_tok_s"] = oneLogits
        out["decode_batch32_logits_tok_s"] = manyLogits
        out["prefill_2048_ms"] = prefill * 1000
        out["prefill_tflops"] = flops / prefill / 1e12
        out["copy_gb_s"] = bandwidth
        out["cublas_peak_tflops"] = peak
        return out
    }

    /// `batch` sequences of `prompt` tokens prefilled (not timed), with block tables room for `steps` more tokens; the
    /// result runs decode step s (one token for every sequence, at position prompt + s), picking each next token on the
    /// GPU (argmax_rows), as greedy serving does, or with `logits` downloading every row's logits.
    static func decodeSteps(_ llama: GPULlama, batch: Int, prompt: Int, steps: Int, logits: Bool = false) throws -> (Int) throws -> Void {
        let bs = llama.blockSize, blocksPer = (prompt + steps + bs) / bs
        let tables = (0..<batch).map { b in Array(b * blocksPer..<(b + 1) * blocksPer) }
        for b in 0..<batch {
            _ = try llama.forward([SequenceStep(tokens: (0..<prompt).map { 100 + ($0 * 31 + b) % 30000 }, start: 0, blockTable: tables[b], logits: .last)])
        }
        return { s in
            let step = (0..<batch).map { b in SequenceStep(tokens: [1000 + s + b], start: prompt + s, blockTable: tables[b], logits: .last) }
            if logits { _ = try llama.forward(step) } else { _ = try llama.forwardArgmax(step) }
        }
    }

    /// One bf16 cuBLAS GEMM (fp32 accumulation and output, as the model's): best of 10 after a warm-up, in seconds.
    static func cublasSeconds(_ gpu: GPUContext, _ x: UInt64, _ w: UInt64, _ y: UInt64, rows: Int, inputs: Int, outputs: Int) throws -> Double {
        var best = Double.infinity
        for _ in 0..<11 {
            try gpu.synchronize()
            let t = ContinuousClock.now
            try GPUGemm.cublas(gpu, x, w, y, rows: rows, inputs: inputs, outputs: outputs, elementBytes: 2)
            try gpu.synchronize()
            best = min(best, (ContinuousClock.now - t).seconds)
        }
        return best
    }

    /// cuBLAS's bf16 GEMM at its best shape, 8192³: TFLOP/s. The prefill target's reference.
    static func cublasPeak(_ gpu: GPUContext) throws -> Double {
        let n = 8192
        let x = try gpu.allocate(n * n * 2), w = try gpu.allocate(n * n * 2), y = try gpu.allocate(n * n * 4)
        defer { [x, w, y].forEach(gpu.free) }
        return 2 * pow(Double(n), 3) / (try cublasSeconds(gpu, x, w, y, rows: n, inputs: n, outputs: n)) / 1e12
    }

    /// Per-operation GPU times (events) of a decode step at batch 1 and 32 (context 512, averaged over 16 and 8 steps)
    /// and of a 2,048-token prefill, launched eagerly behind a spin kernel (so the host's launch pace does not show).
    static func profile(_ llama: GPULlama) throws -> [String: Any] {
        var out: [String: Any] = [:]
        func report(_ title: String, steps: Int) -> [String: Double] {
            let entries = llama.profile!.filter { $0.key != "step" }.sorted { $0.value.seconds > $1.value.seconds }
            let total = (llama.profile!["step"]?.seconds ?? 0) / Double(steps)
            let sum = entries.reduce(0) { $0 + $1.value.seconds } / Double(steps)
            print(String(format: "%@: %.3f ms of GPU time per step, launched eagerly back to back (operations sum to %.3f ms)",
                         title, total * 1000, sum * 1000))
            for (name, e) in entries {
                print(String(format: "  %-34@ %5d calls %9.1f us per step %5.1f%%", name, e.calls / steps, e.seconds / Double(steps) * 1e6,
                             100 * e.seconds / Double(steps) / total))
            }
            return Dictionary(uniqueKeysWithValues: entries.map { ($0.key, $0.value.seconds / Double(steps) * 1e6) })
        }
        out["persistent_decode_phases"] = try persistentPhases(llama)
        // Decode at batch 1 and 32, context 512: a warm-up step first (cuBLAS loads a shape's kernels on first use).
        for (batch, steps) in [(1, 16), (32, 8)] {
            llama.profile = nil
            let step = try decodeSteps(llama, batch: batch, prompt: 512, steps: steps + 1)
            try step(0)
            llama.profile = [:]
            for s in 1...steps { try step(s) }
            out["decode_batch\(batch)_us"] = report("decode batch \(batch)", steps: steps)
        }
        // A warm-up prefill first, as for decode.
        let table = Array(0..<(2048 + llama.blockSize) / llama.blockSize)
        let prompt = (0..<2048).map { 100 + ($0 * 17) % 30000 }
        llama.profile = nil
        _ = try llama.forward([SequenceStep(tokens: prompt, start: 0, blockTable: table, logits: .last)])
        llama.profile = [:]
        _ = try llama.forward([SequenceStep(tokens: prompt, start: 0, blockTable: table, logits: .last)])
        out["prefill_2048_us"] = report("prefill 2048", steps: 1)
        llama.profile = nil
        out["gemm_tflops"] = try gemmSweep(llama.gpu)
        return out
    }

    /// cuBLAS bf16 GEMMs of 2,048 rows at the model's shapes and their neighbours: TFLOP/s, best of 10 after a warm-up.
    static func gemmSweep(_ gpu: GPUContext) throws -> [String: Double] {
        var out: [String: Double] = [:]
        let shapes = [(2048, 1024), (2048, 2048), (2048, 3072), (2048, 4096), (2048, 6144), (2048, 16384), (8192, 2048)]
        let x = try gpu.allocate(2048 * 8192 * 2), w = try gpu.allocate(16384 * 8192 * 2), y = try gpu.allocate(2048 * 16384 * 4)
        defer { [x, w, y].forEach(gpu.free) }
        for (inputs, outputs) in shapes {
            let best = try cublasSeconds(gpu, x, w, y, rows: 2048, inputs: inputs, outputs: outputs)
            let tflops = 2.0 * 2048 * Double(inputs) * Double(outputs) / best / 1e12
            print(String(format: "  cuBLAS 2048×%d·%d×%d: %.1f us, %.0f TFLOP/s", inputs, inputs, outputs, best * 1e6, tflops))
            out["\(inputs)x\(outputs)"] = tflops
        }
        return out
    }

    /// Device-to-device copy of 1 GiB: read + write bytes over time, best of 3.
    static func deviceCopyBandwidth(_ gpu: GPUContext) throws -> Double {
        let n = 1 << 30
        let a = try gpu.allocate(n), b = try gpu.allocate(n)
        defer { gpu.free(a); gpu.free(b) }
        var best = 0.0
        for _ in 0..<3 {
            try gpu.synchronize()
            let t = ContinuousClock.now
            try gpu.copy(a, to: b, bytes: n)
            try gpu.synchronize()
            best = max(best, 2 * Double(n) / (ContinuousClock.now - t).seconds / 1e9)
        }
        return best
    }

    func ms(_ d: Duration) -> Int { Int(d.seconds * 1000) }
}
