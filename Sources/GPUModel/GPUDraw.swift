import CUDA
import Models

/// Sampling on the device: draw_rows over rows of logits, one token per drawn row written into the token buffer
/// that argmax_rows fills for the greedy rows, so one download of ints serves both. Each draw's parameters (the
/// kernel's DrawParams, `stride` bytes) are written into page-locked memory and uploaded with the step's launch.
struct GPUDraw {
    let gpu: GPUContext
    let params: UInt64
    let host: UnsafeMutableRawPointer
    /// The kernel's DRAW_THREADS.
    static let threads = 1024
    /// DrawParams: inverseTemperature, topP, minP, uniform (Float), topK, row, out, one unused (Int32).
    static let stride = 32

    init(_ gpu: GPUContext, rows: Int) throws {
        self.gpu = gpu
        params = try gpu.allocate(rows * Self.stride)
        host = try gpu.allocateHost(rows * Self.stride)
    }

    /// DrawParams of `draw` from logits row `row`, its token going to `out[outIndex]`, at `index` of `buffer`.
    static func write(_ draw: DeviceDraw, row: Int, outIndex: Int, at index: Int, into buffer: UnsafeMutableRawPointer) {
        let p = buffer + index * stride
        p.storeBytes(of: draw.inverseTemperature, toByteOffset: 0, as: Float.self)
        p.storeBytes(of: draw.topP, toByteOffset: 4, as: Float.self)
        p.storeBytes(of: draw.minP, toByteOffset: 8, as: Float.self)
        p.storeBytes(of: draw.uniform, toByteOffset: 12, as: Float.self)
        p.storeBytes(of: Int32(clamping: draw.topK), toByteOffset: 16, as: Int32.self)
        p.storeBytes(of: Int32(row), toByteOffset: 20, as: Int32.self)
        p.storeBytes(of: Int32(outIndex), toByteOffset: 24, as: Int32.self)
        p.storeBytes(of: Int32(0), toByteOffset: 28, as: Int32.self)
    }

    /// Queues the draws (logits row, parameters) over `logits` (rows of `vocab`), each token into `out[row]`, or
    /// `out[i]` for the i-th draw when `byDraw`.
    func launch(_ function: OpaquePointer, draws: [(row: Int, draw: DeviceDraw)], logits: UInt64, vocab: Int, out: UInt64,
                byDraw: Bool = false) throws {
        guard !draws.isEmpty else { return }
        for (i, d) in draws.enumerated() { Self.write(d.draw, row: d.row, outIndex: byDraw ? i : d.row, at: i, into: host) }
        try gpu.uploadAsync(host, bytes: draws.count * Self.stride, to: params)
        try gpu.launch(function, grid: (UInt32(draws.count), 1, 1), block: (UInt32(Self.threads), 1, 1),
                       [.pointer(logits), .pointer(params), .int32(Int32(vocab)), .pointer(out)], name: "draw_rows")
    }

    func free() {
        gpu.free(params)
        gpu.freeHost(host)
    }
}
