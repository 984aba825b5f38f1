import CUDA
import Foundation
import GPUModel

extension GPUCheckCommand {
    /// Where the persistent batch-1 decode step's time goes: each block's barrier arrival and departure times
    /// (globaltimer) over `steps` steps at context 512, reduced per phase kind to the mean block's work, the slowest
    /// block's work, and the barrier (last arrival to last departure). Empty where the kernel does not run.
    static func persistentPhases(_ llama: GPULlama, steps: Int = 8) throws -> [String: Double] {
        guard llama.persistentDecodeApplies else { return [:] }
        let blocks = llama.gpu.multiprocessors, layers = llama.config.layers
        let count = PersistentTrace.words(blocks: blocks, layers: layers)
        let buffer = try llama.gpu.allocate(count * 8)
        defer { llama.gpu.free(buffer) }
        let step = try decodeSteps(llama, batch: 1, prompt: 512, steps: steps + 1)
        try step(0)
        llama.persistentTrace = buffer
        llama.profile = [:]  // eager launches: the trace pointer is not part of a recorded graph
        defer { llama.persistentTrace = 0; llama.profile = nil }
        var trace = PersistentTrace()
        var times = [UInt64](repeating: 0, count: count)
        for s in 1...steps {
            try step(s)
            try times.withUnsafeMutableBytes { try llama.gpu.download(buffer, bytes: $0.count, into: $0.baseAddress!) }
            trace.add(times, blocks: blocks, layers: layers)
        }
        let perStep = 1e-3 / Double(steps)  // ns summed over steps → µs per step
        print(String(format: "persistent decode step, batch 1, context 512: %.1f us per step (kernel start to the last block's end)", trace.total * perStep))
        var out: [String: Double] = ["step_us": trace.total * perStep]
        for (k, name) in PersistentTrace.phases.enumerated() {
            print(String(format: "  %-38@ mean block %6.1f us, slowest block %6.1f us, barrier after it %6.1f us (per step, all layers)",
                         name, trace.mean[k] * perStep, trace.slowest[k] * perStep, trace.barrier[k] * perStep))
            out["\(name) mean_us"] = trace.mean[k] * perStep
            out["\(name) slowest_us"] = trace.slowest[k] * perStep
            out["\(name) barrier_us"] = trace.barrier[k] * perStep
        }
        return out
    }
}
