import CUDA
import Foundation
import Models

/// Sampling on the device: draw_rows over rows of logits, one token per drawn row written into the token buffer
/// that argmax_rows fills for the greedy rows, so one download of ints serves both. Each draw's parameters (the
/// kernel's DrawParams, `stride` bytes) are written into page-locked memory and uploaded with the step's launch.
/// A row is drawn by a group of `slices` blocks, each holding a slice of the row's keys in shared memory: few rows
/// spread over every SM, many rows one group each, with as many groups at once as the device has SMs for.
struct GPUDraw {
    /// Holds the buffers (kept alive with the struct).
    let memory: DeviceMemory
    var gpu: GPUContext { memory.gpu }
    let function: OpaquePointer
    let params: UInt64
    let host: UnsafeMutableRawPointer
    /// The groups' barrier words, partial sums and found elements (sizes: the kernel's comment).
    let words: UInt64, partials: UInt64, results: UInt64
    /// The most keys a block's shared memory holds.
    let sliceCapacity: Int
    let vocab: Int
    /// The kernel's DRAW_THREADS.
    static let threads = 512
    /// DrawParams: inverseTemperature, topP, minP, uniform (Float), topK, row, out, penaltyCount (Int32), repetition,
    /// frequency, presence (Float), penaltyStart, topLogprobs (-1: none), logprobSlot, two unused (Int32).
    static let stride = 64
    /// The kernel's DRAW_LOGPROB_WORDS: a draw's log-probabilities (the drawn token's, the count of pairs, then
    /// (id, log-probability) pairs).
    static let logprobWords = 48
    /// Where the draws that ask for log-probabilities write them (`logprobWords` floats a draw, in the order of those
    /// draws), on the device and in page-locked memory.
    let logprobs: UInt64, hostLogprobs: UnsafeMutableRawPointer
    /// The penalized draws' (token, count) pairs.
    let penalties: PenaltyEntries
    /// At most this many blocks to a row (more wait longer at each barrier than they save); `SWIFTWISE_DRAW_MAX_SLICES`
    /// overrides it (gpu-check's comparisons).
    static let maxSlices = max(1, Int(ProcessInfo.processInfo.environment["SWIFTWISE_DRAW_MAX_SLICES"] ?? "") ?? 32)
    /// At least this many keys to a block, where the device has the SMs to spare.
    static let minSliceKeys = 2048
    /// Shared memory for keys tried at load, largest first (the kernel's own shared arrays take about 2.3 KiB more).
    static let sharedCandidates = [220 << 10, 160 << 10, 96 << 10, 64 << 10, 44 << 10]

    /// Builds the sampling module and its buffers; nil, with a warning that says why, when the device cannot run it
    /// (sampled rows then go to the host sampler).
    static func make(_ memory: DeviceMemory, rows: Int, vocab: Int) -> GPUDraw? {
        let gpu = memory.gpu
        do {
            let function = try gpu.module(source: GPUKernels.samplingModuleSource, name: "sampling", functions: GPUKernels.samplingNames,
                                          options: ["--fmad=false"])["draw_rows"]!
            return try GPUDraw(memory, function: function, rows: rows, vocab: vocab)
        } catch {
            FileHandle.standardError.write(Data("swiftwise: the sampling kernel cannot run here (\(error)); sampled rows are drawn on the host\n".utf8))
            return nil
        }
    }

    /// Its buffers are `memory`'s, except the penalty pairs', which grow (and free themselves).
    init(_ memory: DeviceMemory, function: OpaquePointer, rows: Int, vocab: Int) throws {
        let gpu = memory.gpu
        guard let shared = Self.sharedCandidates.first(where: { (try? gpu.allowSharedMemory(function, bytes: $0)) != nil }) else {
            throw GPUError.call("cuFuncSetAttribute(draw_rows)", code: 1, message: "no shared memory size was allowed")
        }
        let capacity = shared / 4
        guard Self.slicesNeeded(vocab: vocab, capacity: capacity) <= gpu.multiprocessors else {
            throw GPUError.call("draw_rows", code: 1, message: "a vocabulary of \(vocab) does not fit the shared memory of \(gpu.multiprocessors) blocks")
        }
        self.memory = memory
        self.function = function
        self.vocab = vocab
        sliceCapacity = capacity
        params = try memory.allocate(rows * Self.stride)
        host = try memory.allocateHost(rows * Self.stride)
        let sms = gpu.multiprocessors
        words = try memory.upload([UInt32](repeating: 0, count: 2 * sms))
        partials = try memory.allocate(2 * sms * 256 * 8)
        results = try memory.allocate(4 * sms * 8)
        penalties = try PenaltyEntries(gpu, vocab: vocab)
        logprobs = try memory.allocate(rows * Self.logprobWords * 4)
        hostLogprobs = try memory.allocateHost(rows * Self.logprobWords * 4)
    }

    static func slicesNeeded(vocab: Int, capacity: Int) -> Int { (vocab + capacity - 1) / capacity }

    /// Blocks to a row and rows drawn at once for `draws` rows on `multiprocessors` SMs: every block of a launch must
    /// be resident together (they wait for each other), so slices × groups never exceeds the SM count, and the launch
    /// is cooperative where the driver can (it then guarantees that, whatever else runs on the device, or fails).
    static func plan(draws: Int, vocab: Int, capacity: Int, multiprocessors: Int) -> (slices: Int, groups: Int) {
        let spread = min(maxSlices, multiprocessors / max(1, draws), (vocab + minSliceKeys - 1) / minSliceKeys)
        let slices = max(slicesNeeded(vocab: vocab, capacity: capacity), spread, 1)
        return (slices, max(1, min(draws, multiprocessors / slices)))
    }

    /// DrawParams of `draw` from logits row `row`, its token going to `out[outIndex]`, its penalties' pairs at
    /// `penaltyEntries` of the launch's list, at `index` of `buffer`.
    static func write(_ draw: DeviceDraw, row: Int, outIndex: Int, penaltyEntries: Range<Int> = 0..<0, logprobSlot: Int = 0,
                      at index: Int, into buffer: UnsafeMutableRawPointer) {
        let p = buffer + index * stride
        p.storeBytes(of: draw.inverseTemperature, toByteOffset: 0, as: Float.self)
        p.storeBytes(of: draw.topP, toByteOffset: 4, as: Float.self)
        p.storeBytes(of: draw.minP, toByteOffset: 8, as: Float.self)
        p.storeBytes(of: draw.uniform, toByteOffset: 12, as: Float.self)
        p.storeBytes(of: Int32(clamping: draw.topK), toByteOffset: 16, as: Int32.self)
        p.storeBytes(of: Int32(row), toByteOffset: 20, as: Int32.self)
        p.storeBytes(of: Int32(outIndex), toByteOffset: 24, as: Int32.self)
        p.storeBytes(of: Int32(penaltyEntries.count), toByteOffset: 28, as: Int32.self)
        p.storeBytes(of: draw.penalties?.repetition ?? 1, toByteOffset: 32, as: Float.self)
        p.storeBytes(of: draw.penalties?.frequency ?? 0, toByteOffset: 36, as: Float.self)
        p.storeBytes(of: draw.penalties?.presence ?? 0, toByteOffset: 40, as: Float.self)
        p.storeBytes(of: Int32(penaltyEntries.lowerBound), toByteOffset: 44, as: Int32.self)
        p.storeBytes(of: Int32(draw.logprobs.map { min($0, DeviceDraw.maxTopLogprobs) } ?? -1), toByteOffset: 48, as: Int32.self)
        p.storeBytes(of: Int32(logprobSlot), toByteOffset: 52, as: Int32.self)
        p.storeBytes(of: Int64(0), toByteOffset: 56, as: Int64.self)
    }

    /// The log-probabilities the launch's draws with `logprobs` wrote, downloaded (in the order of those draws).
    func downloadLogprobs(_ count: Int) throws -> [DrawnLogprobs] {
        guard count > 0 else { return [] }
        try gpu.download(logprobs, bytes: count * Self.logprobWords * 4, into: hostLogprobs)
        let words = hostLogprobs.assumingMemoryBound(to: Float.self)
        return (0..<count).map { Self.parseLogprobs(words + $0 * Self.logprobWords) }
    }

    /// One draw's slot: the drawn token's log-probability, then its pairs ordered most likely first (equal values
    /// by id), as the host sampler orders its top log-probabilities.
    static func parseLogprobs(_ slot: UnsafePointer<Float>) -> DrawnLogprobs {
        let count = min(Int(slot[1].bitPattern), (logprobWords - 2) / 2)
        var top = (0..<count).map { k in (token: Int(Int32(bitPattern: slot[2 + 2 * k].bitPattern)), logprob: slot[3 + 2 * k]) }
        top.sort { $0.logprob != $1.logprob ? $0.logprob > $1.logprob : $0.token < $1.token }
        return DrawnLogprobs(logprob: slot[0], top: top)
    }

    /// Queues the draws (logits row, parameters) over `logits` (rows of `vocab`), each token into `out[row]`, or
    /// `out[i]` for the i-th draw when `byDraw`.
    func launch(draws: [(row: Int, draw: DeviceDraw)], logits: UInt64, out: UInt64, byDraw: Bool = false) throws {
        guard !draws.isEmpty else { return }
        try penalties.reserve(draws.reduce(0) { $0 + ($1.draw.penalties.map { $0.prompt.count + $0.output.count } ?? 0) })
        var entries = 0, slots = 0
        for (i, d) in draws.enumerated() {
            let start = entries
            if let p = d.draw.penalties { entries = penalties.append(p, at: entries) }
            Self.write(d.draw, row: d.row, outIndex: byDraw ? i : d.row, penaltyEntries: start..<entries, logprobSlot: slots, at: i, into: host)
            if d.draw.logprobs != nil { slots += 1 }
        }
        if entries > 0 { try gpu.uploadAsync(penalties.host, bytes: entries * 8, to: penalties.device) }
        try gpu.uploadAsync(host, bytes: draws.count * Self.stride, to: params)
        let shape = Self.plan(draws: draws.count, vocab: vocab, capacity: sliceCapacity, multiprocessors: gpu.multiprocessors)
        let keys = (vocab + shape.slices - 1) / shape.slices
        try gpu.launch(function, grid: (UInt32(shape.slices), UInt32(shape.groups), 1), block: (UInt32(Self.threads), 1, 1),
                       sharedBytes: UInt32(keys * 4),
                       [.pointer(logits), .pointer(params), .int32(Int32(draws.count)), .int32(Int32(vocab)), .pointer(penalties.device),
                        .pointer(out), .pointer(logprobs), .pointer(words), .pointer(partials), .pointer(results)], name: "draw_rows",
                       cooperative: gpu.cooperativeLaunch)
    }
}

/// The (token, count in the output) pairs of a launch's penalized draws in page-locked memory and on the device
/// (grown when a launch needs more).
final class PenaltyEntries: @unchecked Sendable {
    let gpu: GPUContext
    private(set) var host: UnsafeMutableRawPointer
    private(set) var device: UInt64
    private(set) var capacity: Int
    private var pairs: PenaltyPairs

    init(_ gpu: GPUContext, vocab: Int, capacity: Int = 1 << 16) throws {
        self.gpu = gpu
        self.capacity = capacity
        host = try gpu.allocateHost(capacity * 8)
        device = try gpu.allocate(capacity * 8)
        pairs = PenaltyPairs(vocab: vocab)
    }

    /// Room for `entries` pairs. Called before a launch's pairs are written: the previous launch's copies have
    /// finished (every step waits for its tokens).
    func reserve(_ entries: Int) throws {
        guard entries > capacity else { return }
        let grown = max(entries, 2 * capacity)
        let newHost = try gpu.allocateHost(grown * 8), newDevice = try gpu.allocate(grown * 8)
        free()
        (host, device, capacity) = (newHost, newDevice, grown)
    }

    /// Writes the pairs of `penalties` from pair `start` on; returns the end.
    func append(_ penalties: Penalties, at start: Int) -> Int {
        pairs.write(penalties, into: host.assumingMemoryBound(to: Int32.self), at: start)
    }

    private func free() {
        gpu.free(device)
        gpu.freeHost(host)
    }

    deinit { free() }
}
