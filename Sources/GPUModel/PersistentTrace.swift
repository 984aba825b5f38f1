/// The barrier times decode_step_persistent writes when given a trace buffer, reduced to where a step's time goes:
/// per phase kind (QKV, attention, o, gate|up, down), the mean block's and the slowest block's time from its
/// departure from one barrier to its arrival at the next, and the barrier's own time (the last arrival to the last
/// departure). Pure arithmetic on the downloaded times (unit-tested without a GPU).
public struct PersistentTrace: Sendable, Equatable {
    public static let phases = ["QKV (RMSNorm, GEMV, RoPE, KV write)", "attention", "o projection",
                                "gate|up (RMSNorm, GEMV, SwiGLU)", "down projection"]
    /// Nanoseconds summed over the steps added, by phase kind.
    public var mean = [Double](repeating: 0, count: 5), slowest = [Double](repeating: 0, count: 5)
    public var barrier = [Double](repeating: 0, count: 5)
    /// Nanoseconds from the first block's start to the last block's end, summed over the steps added.
    public var total = 0.0
    public private(set) var steps = 0

    public init() {}

    /// UInt64 words of one step's trace: per block, (5 · layers + 1) barriers of (arrival, departure); the kernel's
    /// start is barrier 0's departure, its end barrier 5 · layers's arrival.
    public static func words(blocks: Int, layers: Int) -> Int { blocks * (5 * layers + 1) * 2 }

    /// Adds one step's trace (`words(blocks:layers:)` globaltimer values).
    public mutating func add(_ times: [UInt64], blocks: Int, layers: Int) {
        precondition(times.count == Self.words(blocks: blocks, layers: layers))
        let stride = (5 * layers + 1) * 2
        func arrival(_ b: Int, _ m: Int) -> Double { Double(times[b * stride + 2 * m]) }
        func departure(_ b: Int, _ m: Int) -> Double { Double(times[b * stride + 2 * m + 1]) }
        let all = 0..<blocks
        total += all.map { arrival($0, 5 * layers) }.max()! - all.map { departure($0, 0) }.min()!
        for phase in 0..<5 * layers {
            let work = all.map { arrival($0, phase + 1) - departure($0, phase) }
            mean[phase % 5] += work.reduce(0, +) / Double(blocks)
            slowest[phase % 5] += work.max()!
            if phase + 1 < 5 * layers {  // the last phase ends the kernel, not at a barrier
                barrier[phase % 5] += all.map { departure($0, phase + 1) }.max()! - all.map { arrival($0, phase + 1) }.max()!
            }
        }
        steps += 1
    }
}
