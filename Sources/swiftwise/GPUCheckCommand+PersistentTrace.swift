import CUDA
import Foundation
import GPUModel

extension GPUCheckCommand {
    /// Where the persistent batch-1 decode step's time goes: each block's barrier arrival and departure times
    /// (globaltimer) over `steps` steps at context 512, reduced per phase kind to the mean block's work, the slowest
    /// block's work, and the barrier (last arrival to last departure). Empty where the kernel does not run.
    static func persistentPhases(_ llama: GPULlama, steps: Int = 8) throws -> [String: Double] {
        guard llama.persistentDecodeAvailable && llama.persistentDecode && !llama.batchInvariant else { return [:] }
        let count = llama.persistentTraceCount, blocks = llama.gpu.multiprocessors, layers = llama.config.layers
        let buffer = try llama.gpu.allocate(count * 8)
        defer { llama.gpu.free(buffer) }
        let step = try decodeSteps(llama, batch: 1, prompt: 512, steps: steps + 1)
        try step(0)
        llama.persistentTrace = buffer
        llama.profile = [:]  // eager launches: the trace pointer is not part of a recorded graph
        defer { llama.persistentTrace = 0; llama.profile = nil }
        let kinds = ["QKV (RMSNorm, GEMV, RoPE, KV write)", "attention", "o projection", "gate|up (RMSNorm, GEMV, SwiGLU)", "down projection"]
        var mean = [Double](repeating: 0, count: 5), slowest = mean, barrier = mean, total = 0.0
        var times = [UInt64](repeating: 0, count: count)
        for s in 1...steps {
            try step(s)
            try times.withUnsafeMutableBytes { try llama.gpu.download(buffer, bytes: $0.count, into: $0.baseAddress!) }
            let stride = (5 * layers + 1) * 2
            func arrival(_ b: Int, _ m: Int) -> Double { Double(times[b * stride + 2 * m]) }
            func departure(_ b: Int, _ m: Int) -> Double { Double(times[b * stride + 2 * m + 1]) }
            total += (0..<blocks).map { arrival($0, 5 * layers) }.max()! - (0..<blocks).map { departure($0, 0) }.min()!
            for phase in 0..<5 * layers {
                let work = (0..<blocks).map { arrival($0, phase + 1) - departure($0, phase) }
                mean[phase % 5] += work.reduce(0, +) / Double(blocks)
                slowest[phase % 5] += work.max()!
                if phase + 1 < 5 * layers {
                    barrier[phase % 5] += (0..<blocks).map { departure($0, phase + 1) }.max()! - (0..<blocks).map { arrival($0, phase + 1) }.max()!
                }
            }
        }
        let perStep = 1e-3 / Double(steps)  // ns summed over steps → µs per step
        print(String(format: "persistent decode step, batch 1, context 512: %.1f us per step (kernel start to the last block's end)", total * perStep))
        var out: [String: Double] = ["step_us": total * perStep]
        for k in 0..<5 {
            print(String(format: "  %-38@ mean block %6.1f us, slowest block %6.1f us, barrier after it %6.1f us (per step, all layers)",
                         kinds[k], mean[k] * perStep, slowest[k] * perStep, barrier[k] * perStep))
            out["\(kinds[k]) mean_us"] = mean[k] * perStep
            out["\(kinds[k]) slowest_us"] = slowest[k] * perStep
            out["\(kinds[k]) barrier_us"] = barrier[k] * perStep
        }
        return out
    }
}
