import Dispatch
import Foundation
import X86Intrinsics
#if canImport(Glibc)
import Glibc
#endif

/// fp32 CPU kernels. Every output element of `matmul` is one dot product computed by the same code whatever the
/// number of rows in the batch, so a sequence's results never depend on what it is batched with.
public enum CPUKernels {
    /// Σ a[i]·b[i] with a fixed accumulation order (two 16-lane accumulators, then the tail).
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 32 <= n {
            acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            acc1 += ra.loadUnaligned(fromByteOffset: (i + 16) * 4, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: (i + 16) * 4, as: SIMD16<Float>.self)
            i += 32
        }
        var sum = (acc0 + acc1).sum()
        while i < n {
            sum += a[i] * b[i]
            i += 1
        }
        return sum
    }

    /// y[t][o] = Σ_i x[t][i] · w[o][i] (+ bias[o]) for t in rows, o in outputs; `w` is row-major [outputs × inputs].
    /// Work is split over output rows across threads; each weight row is streamed once for all tokens.
    public static func matmul(_ x: UnsafePointer<Float>, rows: Int, inputs: Int, _ w: UnsafePointer<Float>, outputs: Int,
                              bias: UnsafePointer<Float>? = nil, into y: UnsafeMutablePointer<Float>) {
        let chunk = 64
        let chunks = (outputs + chunk - 1) / chunk
        let xs = UnsafeSendable(x), ws = UnsafeSendable(w), ys = UnsafeSendable(UnsafePointer(y)), bs = bias.map { UnsafeSendable($0) }
        parallelFor(chunks) { c in
            let y = UnsafeMutablePointer(mutating: ys.pointer)
            for o in c * chunk..<min(outputs, (c + 1) * chunk) {
                let wr = ws.pointer + o * inputs
                let b = bs.map { $0.pointer[o] } ?? 0
                for t in 0..<rows {
                    y[t * outputs + o] = dot(xs.pointer + t * inputs, wr, inputs) + b
                }
            }
        }
    }

    /// RMSNorm of each row: x / sqrt(mean(x²) + eps) · weight.
    public static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, size: Int, weight: UnsafePointer<Float>, eps: Float,
                               into y: UnsafeMutablePointer<Float>) {
        for t in 0..<rows {
            let row = x + t * size
            let ss = dot(row, row, size)
            let scale = 1 / (ss / Float(size) + eps).squareRoot()
            for i in 0..<size { y[t * size + i] = row[i] * scale * weight[i] }
        }
    }

    /// SwiGLU in place: gate[i] = silu(gate[i]) · up[i].
    public static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// Worker threads for kernels: `SWIFTWISE_THREADS`, else every core. 1 runs everything inline.
    public static let threads: Int = {
        if let text = ProcessInfo.processInfo.environment["SWIFTWISE_THREADS"], let n = Int(text), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }()

    /// Runs `body(i)` for i in 0..<count over `threads` threads, each taking a contiguous range, on persistent
    /// workers (inline when there is one thread or one item).
    public static func parallelFor(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        pool.run(count, body)
    }

    static let pool = WorkerPool(threads: threads)

    /// Whether this CPU runs the int8 (AVX-512 VNNI) kernels; without them quantized weights use fp32 activations.
    public static let hasInt8Kernels = sw_cpu_has_avx512_vnni() != 0
}

/// A pointer handed to worker threads whose regions do not overlap (each thread writes its own outputs).
public struct UnsafeSendable<T>: @unchecked Sendable {
    public let pointer: UnsafePointer<T>
    public init(_ pointer: UnsafePointer<T>) { self.pointer = pointer }
}

