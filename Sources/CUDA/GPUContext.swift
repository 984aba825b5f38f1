import Crypto
import Foundation

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

    /// Copies are ordered on the stream after the work already queued and return when done (the host buffer
    /// may be reused at once).
    public func upload(_ source: UnsafeRawPointer, bytes: Int, to ptr: UInt64) throws(GPUError) {
        try driver.check(driver.cuMemcpyHtoDAsync(ptr, source, bytes, stream), "cuMemcpyHtoDAsync")
        try synchronize()
    }

    public func download(_ ptr: UInt64, bytes: Int, into destination: UnsafeMutableRawPointer) throws(GPUError) {
        try driver.check(driver.cuMemcpyDtoHAsync(destination, ptr, bytes, stream), "cuMemcpyDtoHAsync")
        try synchronize()
    }

    public func copy(_ source: UInt64, to destination: UInt64, bytes: Int) throws(GPUError) {
        try driver.check(driver.cuMemcpyDtoDAsync(destination, source, bytes, stream), "cuMemcpyDtoDAsync")
        try synchronize()
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

    /// Lets `function` use up to `bytes` of shared memory per block (beyond the default 48 KiB); fails when the device
    /// allows less.
    public func allowSharedMemory(_ function: OpaquePointer, bytes: Int) throws(GPUError) {
        try driver.check(driver.cuFuncSetAttribute(function, 8, Int32(bytes)), "cuFuncSetAttribute(max dynamic shared memory \(bytes))")
    }

    /// Launches `function` with 1-D grid and block; `arguments` are the kernel's parameters in order.
    public func launch(_ function: OpaquePointer, grid: (UInt32, UInt32, UInt32), block: (UInt32, UInt32, UInt32), sharedBytes: UInt32 = 0,
                       _ arguments: [KernelArgument], name: String) throws(GPUError) {
        // Each argument gets an 8-byte cell on the stack; cuLaunchKernel reads them through an array of pointers.
        let result = withUnsafeTemporaryAllocation(byteCount: 8 * arguments.count, alignment: 8) { cells in
            withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: arguments.count) { pointers in
                for (i, argument) in arguments.enumerated() {
                    let cell = cells.baseAddress! + 8 * i
                    argument.store(into: cell)
                    pointers[i] = cell
                }
                return driver.cuLaunchKernel(function, grid.0, grid.1, grid.2, block.0, block.1, block.2, sharedBytes, stream,
                                             pointers.baseAddress, nil)
            }
        }
        try driver.check(result, "cuLaunchKernel(\(name))")
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
