import CUDA

/// How many KV cache blocks a GPU model allocates.
public enum KVCacheSize: Sendable, Equatable {
    case blocks(Int)
    /// vLLM's `--gpu-memory-utilization`: the cache gets what is left of `fraction` × the device's memory once the
    /// weights are loaded (measured, not estimated), less the scratch buffers and `reserveBytes` for what is not
    /// counted (kernel modules, CUDA graphs, the sampler's buffers, allocation granularity).
    case memoryFraction(Double, reserveBytes: Int = 256 << 20)

    /// Each block costs `blockBytes` of cache and 16 bytes of step metadata (its block-table entries).
    func blocks(_ memory: (free: Int, total: Int), blockBytes: Int, scratchBytes: Int) throws -> Int {
        switch self {
        case .blocks(let count):
            return count
        case .memoryFraction(let fraction, let reserve):
            let available = Int(Double(memory.total) * fraction) - (memory.total - memory.free) - scratchBytes - reserve
            let count = available / (blockBytes + 16)
            guard count > 0 else { throw KVCacheSizeError(fraction: fraction, available: available, blockBytes: blockBytes + 16) }
            return count
        }
    }
}

public struct KVCacheSizeError: Error, CustomStringConvertible {
    public let fraction: Double, available: Int, blockBytes: Int
    public var description: String {
        "no device memory left for a KV cache at --gpu-memory-utilization \(fraction): \(available >> 20) MiB left once the weights, "
            + "scratch buffers and reserve are counted, a block needs \(blockBytes) bytes"
    }
}
