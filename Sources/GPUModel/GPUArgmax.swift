import CUDA

/// Greedy sampling on the device: argmax_rows over rows of logits, one index per row in `out`. Each row is split over
/// `blocks(vocab:)` blocks that fold their keys into `keys` with atomicMax; the row's last block (counted in
/// `counters`) writes the index and zeroes its key and counter, so the buffers are ready for the next launch
/// (allocated zeroed; a launch recorded in a graph needs nothing reset between replays).
struct GPUArgmax {
    /// Holds the buffers (kept alive with the struct).
    let memory: DeviceMemory
    var gpu: GPUContext { memory.gpu }
    let keys: UInt64, counters: UInt64, out: UInt64
    /// The kernel's ARGMAX_THREADS.
    static let threads = 256

    init(_ memory: DeviceMemory, rows: Int) throws {
        self.memory = memory
        keys = try memory.upload([UInt32](repeating: 0, count: 2 * rows))
        counters = try memory.upload([UInt32](repeating: 0, count: rows))
        out = try memory.allocate(rows * 4)
    }

    /// Blocks per row: about four elements a thread, at most 64 (128256 logits: 64 blocks of 2004).
    static func blocks(vocab: Int) -> Int { max(1, min(64, (vocab + 4 * threads - 1) / (4 * threads))) }

    func launch(_ function: OpaquePointer, logits: UInt64, rows: Int, vocab: Int) throws {
        try gpu.launch(function, grid: (UInt32(Self.blocks(vocab: vocab)), UInt32(rows), 1), block: (UInt32(Self.threads), 1, 1),
                       [.pointer(logits), .int32(Int32(vocab)), .pointer(keys), .pointer(counters), .pointer(out)], name: "argmax_rows")
    }
}
