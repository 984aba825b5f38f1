import Foundation
import XCTest

@testable import GPUModel

/// Both kernel modules checked by clang's CUDA front end (parsing, names, types, template instantiation; no code is
/// generated: the toolchain's clang has no NVPTX back end), for sm_90, sm_80 and sm_75, bf16 and fp32 GEMM inputs.
/// CI has no GPU and no NVRTC, so without this a typo in a kernel would first show on a GPU machine. Needs only the
/// clang that ships with the Swift toolchain; skipped with a message where there is none.
final class GPUKernelSyntaxTests: XCTestCase {
    func testKernelSourcePassesClangsCUDAFrontEnd() throws {
        guard let clang = Self.clang() else { throw XCTSkip("no clang next to swift or on PATH: the kernel source is not checked") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftwise-kernels-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (module, source) in [("llama", GPUKernels.source), ("sampling", GPUKernels.samplingModuleSource)] {
            let file = dir.appendingPathComponent("\(module).cu")
            try (Self.nvrtcShim + "\n" + source).write(to: file, atomically: true, encoding: .utf8)
            // The persistent kernel's timing variants and diagnostics too (SWIFTWISE_KERNEL_DEFINES).
            let variants = ["-DPD_SPREAD=1", "-DPD_ACQREL_ARRIVE=1", "-DPD_STAGES=6", "-DPD_MERGE_ALL=1", "-DPD_DIAG_NO_WAIT=1", "-DPD_DIAG_NO_ATTENTION=1"]
            for (arch, defines) in [("sm_90", []), ("sm_90", ["-DGEMM_FP32"]), ("sm_80", []), ("sm_75", []), ("sm_90", variants),
                                     ("sm_90", ["-DPD_STAGES=16", "-DPD_PRIME=15", "-DPD_LEAD=7"])] {
                let (status, output) = try Self.run(clang, ["-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch=\(arch)", "-nocudainc",
                                                            "-nocudalib", "-Xclang", "-target-feature", "-Xclang", "+ptx80", "-std=c++17",
                                                            "-fsyntax-only", "-Werror"] + defines + [file.path])
                XCTAssertEqual(status, 0, "clang rejects the \(module) module's source for \(arch) \(defines):\n\(output)")
            }
        }
    }

    /// Ring depths that would let a copy overwrite a slot before its use (or wait for the wrong group) do not compile.
    func testInconsistentRingDepthsAreRejected() throws {
        guard let clang = Self.clang() else { throw XCTSkip("no clang next to swift or on PATH: the kernel source is not checked") }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("swiftwise-ring-\(getpid()).cu")
        defer { try? FileManager.default.removeItem(at: file) }
        try (Self.nvrtcShim + "\n" + GPUKernels.source).write(to: file, atomically: true, encoding: .utf8)
        for defines in [["-DPD_PRIME=7", "-DPD_LEAD=8"], ["-DPD_STAGES=8", "-DPD_PRIME=8"]] {
            let (status, output) = try Self.run(clang, ["-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch=sm_90", "-nocudainc", "-nocudalib",
                                                        "-Xclang", "-target-feature", "-Xclang", "+ptx80", "-std=c++17", "-fsyntax-only"]
                                                       + defines + [file.path])
            XCTAssertNotEqual(status, 0, "\(defines)")
            XCTAssertTrue(output.contains("ring depths"), output)
        }
    }

    /// A mistake in a kernel is reported (the check can fail).
    func testAnUndeclaredNameIsReported() throws {
        guard let clang = Self.clang() else { throw XCTSkip("no clang next to swift or on PATH: the kernel source is not checked") }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("swiftwise-bad-kernel-\(getpid()).cu")
        defer { try? FileManager.default.removeItem(at: file) }
        try (Self.nvrtcShim + "\nextern \"C\" __global__ void k(float* x) { x[threadIdx.x] = rsqrtf(y); }\n").write(to: file, atomically: true, encoding: .utf8)
        let (status, output) = try Self.run(clang, ["-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch=sm_90", "-nocudainc", "-nocudalib",
                                                    "-fsyntax-only", file.path])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(output.contains("undeclared identifier 'y'"), output)
    }

    /// clang beside the running toolchain's swift (what CI installs), else on PATH.
    static func clang() -> String? {
        var candidates: [String] = []
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            candidates.append("\(dir)/clang")
        }
        candidates += ["/opt/swift/usr/bin/clang", "/usr/bin/clang"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func run(_ tool: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    /// What NVRTC declares by itself (vector types, intrinsics, the attribute macros), declared for clang's CUDA front
    /// end; `force_cuda_host_device` plays NVRTC's -default-device (unmarked functions are device functions).
    static let nvrtcShim = #"""
    // What NVRTC declares by itself (builtin variables, vector types, intrinsics), declared for clang's CUDA front end
    // so that the kernel source can be checked (-fsyntax-only) where no CUDA toolkit is installed.
    #include "__clang_cuda_builtin_vars.h"
    #define __global__ __attribute__((global))
    #define __device__ __attribute__((device))
    #define __host__ __attribute__((host))
    #define __shared__ __attribute__((shared))
    #define __constant__ __attribute__((constant))
    #define __forceinline__ __attribute__((always_inline))
    #define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
    #define __align__(n) __attribute__((aligned(n)))
    typedef unsigned long size_t;
    #pragma clang force_cuda_host_device begin
    struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
    struct __attribute__((aligned(8))) float2 { float x, y; };
    struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
    struct __attribute__((aligned(8))) uint2 { unsigned x, y; };
    struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
    struct __attribute__((aligned(8))) int2 { int x, y; };
    float4 make_float4(float, float, float, float);
    float2 make_float2(float, float);
    uint4 make_uint4(unsigned, unsigned, unsigned, unsigned);
    uint2 make_uint2(unsigned, unsigned);
    int2 make_int2(int, int);
    float rsqrtf(float); float sqrtf(float); float expf(float); float __expf(float); float exp2f(float); float logf(float);
    float __logf(float); float fmaf(float, float, float); float fmaxf(float, float); float fminf(float, float);
    double ceil(double); double floor(double); double log(double); float fabsf(float); float tanhf(float); float powf(float, float); float floorf(float); float ceilf(float);
    void sincosf(float, float*, float*); void __sincosf(float, float*, float*); float __fdividef(float, float);
    float __uint_as_float(unsigned); unsigned __float_as_uint(float); float __int_as_float(int); int __float_as_int(float);
    int isnan(float); int isinf(float); int isfinite(float); int signbit(float);
    int min(int, int); int max(int, int); unsigned min(unsigned, unsigned); unsigned max(unsigned, unsigned);
    long min(long, long); long max(long, long); long long min(long long, long long); long long max(long long, long long);
    unsigned long long min(unsigned long long, unsigned long long); unsigned long long max(unsigned long long, unsigned long long);
    float min(float, float); float max(float, float);
    int __popc(unsigned); int __popcll(unsigned long long); int __ffs(int); int __ffsll(long long); int __clz(int); int __clzll(long long);
    unsigned __brev(unsigned); unsigned long long __umul64hi(unsigned long long, unsigned long long); unsigned long long __float2ull_rn(float); unsigned __umulhi(unsigned, unsigned);
    int __syncthreads_count(int); int __syncthreads_or(int); int __syncthreads_and(int);
    void __syncwarp(unsigned = 0xffffffffu); void __threadfence(); void __threadfence_block(); unsigned __activemask();
    template <class T> T __shfl_xor_sync(unsigned, T, int, int = 32);
    template <class T> T __shfl_sync(unsigned, T, int, int = 32);
    template <class T> T __shfl_down_sync(unsigned, T, unsigned, int = 32);
    template <class T> T __shfl_up_sync(unsigned, T, unsigned, int = 32);
    unsigned __ballot_sync(unsigned, int); int __any_sync(unsigned, int); int __all_sync(unsigned, int);
    unsigned __match_any_sync(unsigned, unsigned); unsigned __match_any_sync(unsigned, unsigned long long);
    unsigned __reduce_add_sync(unsigned, unsigned); unsigned __reduce_max_sync(unsigned, unsigned); unsigned __reduce_min_sync(unsigned, unsigned);
    template <class T> T __ldcg(const T*); template <class T> T __ldg(const T*); template <class T> T __ldcs(const T*);
    template <class T> void __stcg(T*, T); template <class T> void __stcs(T*, T);
    size_t __cvta_generic_to_shared(const void*);
    int atomicAdd(int*, int); unsigned atomicAdd(unsigned*, unsigned); unsigned long long atomicAdd(unsigned long long*, unsigned long long);
    float atomicAdd(float*, float); int atomicMax(int*, int); unsigned atomicMax(unsigned*, unsigned);
    unsigned long long atomicMax(unsigned long long*, unsigned long long); int atomicMin(int*, int); unsigned atomicMin(unsigned*, unsigned);
    int atomicExch(int*, int); unsigned long long atomicExch(unsigned long long*, unsigned long long); unsigned atomicExch(unsigned*, unsigned); float atomicExch(float*, float);
    int atomicCAS(int*, int, int); unsigned atomicCAS(unsigned*, unsigned, unsigned);
    unsigned long long atomicCAS(unsigned long long*, unsigned long long, unsigned long long);
    unsigned atomicInc(unsigned*, unsigned);
    long long clock64(); unsigned long long __globaltimer();
    """#
}
