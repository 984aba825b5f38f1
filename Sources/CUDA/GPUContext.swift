import Crypto
import Foundation
import Synchronization

/// One CUDA device with its primary context, kernel compiler (cubins cached on disk by source hash) and cuBLAS.
public final class GPUContext: @unchecked Sendable {
    public let driver: CUDADriver
    public let nvrtc: NVRTC
    public let blas: CuBLAS
    public let device: Int32
    public let name: String
    public let computeCapability: Int
    public let multiprocessors: Int
    let context: OpaquePointer?
    /// Every launch and copy goes through this one stream (graph capture needs a stream other than the legacy one).
    public let stream: OpaquePointer?
    /// cuBLAS's workspace, set explicitly so that GEMMs recorded into a graph allocate nothing.
    let blasWorkspace: UInt64

    public init(deviceIndex: Int32 = 0) throws(GPUError) {
        let driver = try CUDADriver()
        self.driver = driver
        try driver.check(driver.cuInit(0), "cuInit")
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard count > deviceIndex else { throw .noDevice }
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, deviceIndex), "cuDeviceGet")
        self.device = device
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, 256, device), "cuDeviceGetName")
        name = String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var major: Int32 = 0, minor: Int32 = 0, sms: Int32 = 0
        try driver.check(driver.cuDeviceGetAttribute(&major, 75, device), "cuDeviceGetAttribute(major)")
        try driver.check(driver.cuDeviceGetAttribute(&minor, 76, device), "cuDeviceGetAttribute(minor)")
        try driver.check(driver.cuDeviceGetAttribute(&sms, 16, device), "cuDeviceGetAttribute(multiprocessors)")
        computeCapability = Int(major * 10 + minor)
        multiprocessors = Int(sms)
        var ctx: OpaquePointer?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&ctx, device), "cuDevicePrimaryCtxRetain")
        try driver.check(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        context = ctx
        nvrtc = try NVRTC()
        blas = try CuBLAS()
        var s: OpaquePointer?
        try driver.check(driver.cuStreamCreate(&s, 0), "cuStreamCreate")
        stream = s
        let workspaceBytes = 32 << 20
        var ws: UInt64 = 0
        try driver.check(driver.cuMemAlloc(&ws, workspaceBytes), "cuMemAlloc(cuBLAS workspace)")
        blasWorkspace = ws
        let setStream = blas.setStream(blas.handle, s)
        guard setStream == 0 else { throw .call("cublasSetStream_v2", code: setStream, message: "cuBLAS status \(setStream)") }
        let setWorkspace = blas.setWorkspace(blas.handle, UnsafeMutableRawPointer(bitPattern: UInt(ws)), workspaceBytes)
        guard setWorkspace == 0 else { throw .call("cublasSetWorkspace_v2", code: setWorkspace, message: "cuBLAS status \(setWorkspace)") }
        dependentLaunch = computeCapability >= 90 && driver.cuLaunchKernelEx != nil
            && ProcessInfo.processInfo.environment["SWIFTWISE_PDL"] == "1"
    }

    /// Makes this context current on the calling thread (the engine's step loop runs on its own thread).
    public func makeCurrent() throws(GPUError) {
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    }

    public var memory: (free: Int, total: Int) {
        var free = 0, total = 0
        _ = driver.cuMemGetInfo(&free, &total)
        return (free, total)
    }

    /// The cache key of a kernel build: source, architecture and options.
    public static func cacheKey(source: String, arch: Int, options: [String]) -> String {
        let digest = SHA256.hash(data: Data((source + "\u{0}sm_\(arch)\u{0}" + options.joined(separator: " ")).utf8))
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    /// Compiles (or loads from `~/.cache/swiftwise/kernels`) a module and returns its functions by name.
    public func module(source: String, name: String, functions: [String], options: [String] = []) throws(GPUError) -> [String: OpaquePointer] {
        let key = Self.cacheKey(source: source, arch: computeCapability, options: options)
        let dir = (ProcessInfo.processInfo.environment["SWIFTWISE_CACHE"] ?? NSHomeDirectory() + "/.cache/swiftwise") + "/kernels"
        let file = dir + "/\(name)-\(key.prefix(16)).cubin"
        var cubin: [UInt8]
        if let cached = FileManager.default.contents(atPath: file), !cached.isEmpty {
            cubin = Array(cached)
        } else {
            cubin = try nvrtc.compile(source, name: name, arch: computeCapability, options: options)
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try? Data(cubin).write(to: URL(fileURLWithPath: file + ".tmp"))
            _ = rename(file + ".tmp", file)
        }
        var module: OpaquePointer?
        let loaded = cubin.withUnsafeBytes { raw in driver.cuModuleLoadData(&module, raw.baseAddress!) }
        try driver.check(loaded, "cuModuleLoadData(\(name))")
        var out: [String: OpaquePointer] = [:]
        for fn in functions {
            var f: OpaquePointer?
            try driver.check(driver.cuModuleGetFunction(&f, module, fn), "cuModuleGetFunction(\(fn))")
            out[fn] = f!
            if let info = driver.cuFuncGetParamInfo {  // no count where the driver cannot tell (a failing first query)
                _ = driver.cuFuncLoad?(f)
                var count = 0, offset = 0, size = 0
                while info(f, count, &offset, &size) == 0 { count += 1 }
                if count > 0 { parameterCounts.withLock { $0[UInt(bitPattern: f)] = count } }
            }
        }
        return out
    }

    // MARK: memory

    public func allocate(_ bytes: Int) throws(GPUError) -> UInt64 {
        var ptr: UInt64 = 0
        let result = driver.cuMemAlloc(&ptr, max(bytes, 1))
        if result == 2 { throw .outOfMemory(requested: bytes, free: memory.free) }
        try driver.check(result, "cuMemAlloc(\(bytes))")
        return ptr
    }

    public func free(_ ptr: UInt64) { _ = driver.cuMemFree(ptr) }

    /// Page-locked host memory (for the per-step metadata upload and logits download); free with `freeHost`.
    public func allocateHost(_ bytes: Int) throws(GPUError) -> UnsafeMutableRawPointer {
        var ptr: UnsafeMutableRawPointer?
        try driver.check(driver.cuMemAllocHost(&ptr, max(bytes, 1)), "cuMemAllocHost(\(bytes))")
        return ptr!
    }

    public func freeHost(_ ptr: UnsafeMutableRawPointer) { _ = driver.cuMemFreeHost(ptr) }

    /// Queues a copy and returns at once: `source` must stay unchanged until the stream has passed it (the next
    /// `synchronize` or a download).
    public func uploadAsync(_ source: UnsafeRawPointer, bytes: Int, to ptr: UInt64) throws(GPUError) {
        try driver.check(driver.cuMemcpyHtoDAsync(ptr, source, bytes, stream), "cuMemcpyHtoDAsync")
    }

    /// Copies are ordered on the stream after the work already queued and return when done (the host buffer
    /// may be reused at once).
    public func upload(_ source: UnsafeRawPointer, bytes: Int, to ptr: UInt64) throws(GPUError) {
        try driver.check(driver.cuMemcpyHtoDAsync(ptr, source, bytes, stream), "cuMemcpyHtoDAsync")
        try synchronize()
    }

    public func download(_ ptr: UInt64, bytes: Int, into destination: UnsafeMutableRawPointer) throws(GPUError) {
        try downloadAsync(ptr, bytes: bytes, into: destination)
        try synchronize()
    }

    /// Queues a copy to the host and returns at once: `destination` (page-locked, or the copy is synchronous) holds
    /// the bytes once the stream has passed it (`synchronize`).
    public func downloadAsync(_ ptr: UInt64, bytes: Int, into destination: UnsafeMutableRawPointer) throws(GPUError) {
        try driver.check(driver.cuMemcpyDtoHAsync(destination, ptr, bytes, stream), "cuMemcpyDtoHAsync")
    }

    public func copy(_ source: UInt64, to destination: UInt64, bytes: Int) throws(GPUError) {
        try driver.check(driver.cuMemcpyDtoDAsync(destination, source, bytes, stream), "cuMemcpyDtoDAsync")
        try synchronize()
    }

    /// A new event (for GPU-side timing); events live as long as the process.
    public func makeEvent() throws(GPUError) -> OpaquePointer {
        var event: OpaquePointer?
        try driver.check(driver.cuEventCreate(&event, 0), "cuEventCreate")
        return event!
    }

    /// Records `event` on the stream: it completes when the work queued before it has.
    public func record(_ event: OpaquePointer) throws(GPUError) {
        try driver.check(driver.cuEventRecord(event, stream), "cuEventRecord")
    }

    /// Seconds between two completed events.
    public func seconds(from start: OpaquePointer, to end: OpaquePointer) throws(GPUError) -> Double {
        var ms: Float = 0
        try driver.check(driver.cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime")
        return Double(ms) / 1000
    }

    public func synchronize() throws(GPUError) {
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    /// Records the launches `body` makes on the stream into a graph, without running them, and returns it
    /// instantiated: `replay` then runs them all with one launch. Kernel arguments are frozen at capture.
    public func capture(_ body: () throws -> Void) throws -> OpaquePointer {
        try driver.check(driver.cuStreamBeginCapture(stream, 1), "cuStreamBeginCapture")  // thread-local mode
        var graph: OpaquePointer?
        do {
            try body()
        } catch {
            _ = driver.cuStreamEndCapture(stream, &graph)
            if graph != nil { _ = driver.cuGraphDestroy(graph) }
            throw error
        }
        try driver.check(driver.cuStreamEndCapture(stream, &graph), "cuStreamEndCapture")
        defer { _ = driver.cuGraphDestroy(graph) }
        var exec: OpaquePointer?
        try driver.check(driver.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiateWithFlags")
        return exec!
    }

    public func replay(_ graph: OpaquePointer) throws(GPUError) {
        try driver.check(driver.cuGraphLaunch(graph, stream), "cuGraphLaunch")
    }

    /// Frees a graph that `capture` returned.
    public func destroy(graph: OpaquePointer) { _ = driver.cuGraphExecDestroy(graph) }

    /// Lets `function` use up to `bytes` of shared memory per block (beyond the default 48 KiB); fails when the device
    /// allows less.
    public func allowSharedMemory(_ function: OpaquePointer, bytes: Int) throws(GPUError) {
        try driver.check(driver.cuFuncSetAttribute(function, 8, Int32(bytes)), "cuFuncSetAttribute(max dynamic shared memory \(bytes))")
    }

    /// Programmatic dependent launch (sm_90+, opt-in with `SWIFTWISE_PDL=1`: on the H100 it did not speed up decode,
    /// 598 vs 626 tok/s without, as the next kernel's waiting blocks hold SM slots): a kernel may start while the one before
    /// it on the stream finishes, and runs what does not depend on it (a GEMV's first weight loads) before its
    /// `griddepcontrol.wait`. Every kernel of ours waits before touching its inputs; kernels of other libraries
    /// (cuBLAS) are launched plainly and are ordered as usual.
    public var dependentLaunch = false
    /// Parameters per kernel (by function handle), where the driver can tell (`launch` checks the argument count).
    private let parameterCounts = Mutex<[UInt: Int]>([:])

    /// How many parameters `function` takes, where the driver can tell (nil: launches are not checked).
    public func parameterCount(of function: OpaquePointer) -> Int? { parameterCounts.withLock { $0[UInt(bitPattern: function)] } }

    /// Whether kernels can be launched cooperatively (`launch(cooperative: true)`: cuLaunchKernelEx, CUDA 12.0+).
    public var cooperativeLaunch: Bool { driver.cuLaunchKernelEx != nil }

    /// Launches `function` with 1-D grid and block; `arguments` are the kernel's parameters in order. `cooperative`:
    /// the driver launches all blocks at once or fails (a kernel whose blocks wait for each other needs that).
    public func launch(_ function: OpaquePointer, grid: (UInt32, UInt32, UInt32), block: (UInt32, UInt32, UInt32), sharedBytes: UInt32 = 0,
                       _ arguments: [KernelArgument], name: String, cooperative: Bool = false) throws(GPUError) {
        // The driver reads as many parameters as the kernel declares: too few arguments would be read from past the
        // array (a crash or garbage), so a mismatch is an error naming the kernel.
        if let expected = parameterCounts.withLock({ $0[UInt(bitPattern: function)] }), expected != arguments.count {
            throw .call("cuLaunchKernel(\(name))", code: 1, message: "\(arguments.count) arguments for a kernel of \(expected) parameters")
        }
        if dependentLaunch || cooperative {
            guard let launchEx = driver.cuLaunchKernelEx else {
                throw .call("cuLaunchKernelEx(\(name))", code: 1, message: "a cooperative launch needs a CUDA 12 driver")
            }
            // CU_LAUNCH_ATTRIBUTE_COOPERATIVE (2), CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION (6).
            let attributes: [Int32] = (cooperative ? [2] : []) + (dependentLaunch ? [6] : [])
            let result = withKernelParameters(arguments) { parameters in
                Self.withLaunchConfig(grid: grid, block: block, sharedBytes: sharedBytes, stream: stream, attributes: attributes) { config in
                    launchEx(config, function, parameters, nil)
                }
            }
            try driver.check(result, "cuLaunchKernelEx(\(name))")
            return
        }
        let result = withKernelParameters(arguments) { parameters in
            driver.cuLaunchKernel(function, grid.0, grid.1, grid.2, block.0, block.1, block.2, sharedBytes, stream, parameters, nil)
        }
        try driver.check(result, "cuLaunchKernel(\(name))")
    }

    /// Each argument gets an 8-byte cell on the stack; the launch reads them through an array of pointers.
    private func withKernelParameters(_ arguments: [KernelArgument],
                                      _ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32) -> Int32 {
        withUnsafeTemporaryAllocation(byteCount: 8 * max(arguments.count, 1), alignment: 8) { cells in
            withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(arguments.count, 1)) { pointers in
                for (i, argument) in arguments.enumerated() {
                    let cell = cells.baseAddress! + 8 * i
                    argument.store(into: cell)
                    pointers[i] = cell
                }
                return body(pointers.baseAddress)
            }
        }
    }

    /// A `CUlaunchConfig` (56 bytes: grid, block, shared bytes, stream, attribute pointer and count) with one
    /// `CUlaunchAttribute` (72 bytes: id, padding, a 64-byte value union) per id in `attributes`, each set to 1.
    static func withLaunchConfig(grid: (UInt32, UInt32, UInt32), block: (UInt32, UInt32, UInt32), sharedBytes: UInt32,
                                 stream: OpaquePointer?, attributes: [Int32], _ body: (UnsafeRawPointer) -> Int32) -> Int32 {
        withUnsafeTemporaryAllocation(byteCount: 56 + 72 * attributes.count, alignment: 8) { raw in
            let base = raw.baseAddress!
            base.initializeMemory(as: UInt8.self, repeating: 0, count: 56 + 72 * attributes.count)
            let attribute = base + 56
            for (i, id) in attributes.enumerated() {
                (attribute + 72 * i).storeBytes(of: id, as: Int32.self)
                (attribute + 72 * i + 8).storeBytes(of: Int32(1), as: Int32.self)
            }
            for (i, v) in [grid.0, grid.1, grid.2, block.0, block.1, block.2, sharedBytes].enumerated() {
                base.storeBytes(of: v, toByteOffset: 4 * i, as: UInt32.self)
            }
            base.storeBytes(of: stream, toByteOffset: 32, as: OpaquePointer?.self)
            base.storeBytes(of: UnsafeRawPointer(attribute), toByteOffset: 40, as: UnsafeRawPointer.self)
            base.storeBytes(of: UInt32(attributes.count), toByteOffset: 48, as: UInt32.self)
            return body(UnsafeRawPointer(base))
        }
    }
}

/// A kernel parameter by value.
public enum KernelArgument: Sendable {
    case pointer(UInt64)
    case int32(Int32)
    case int64(Int64)
    case float(Float)

    func store(into cell: UnsafeMutableRawPointer) {
        switch self {
        case .pointer(let p): cell.storeBytes(of: p, as: UInt64.self)
        case .int32(let i): cell.storeBytes(of: i, as: Int32.self)
        case .int64(let i): cell.storeBytes(of: i, as: Int64.self)
        case .float(let f): cell.storeBytes(of: f, as: Float.self)
        }
    }
}
