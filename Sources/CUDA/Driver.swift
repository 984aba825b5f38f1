#if canImport(Glibc)
import Glibc
#endif

/// The CUDA driver API calls we use, resolved from `libcuda.so.1` at run time. Every call's result is checked by
/// `check`, which turns a failure into a `GPUError.call` naming the call.
public final class CUDADriver: @unchecked Sendable {
    typealias Result = Int32
    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> Result
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Result
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Result
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> Result
    let cuCtxSetCurrent: @convention(c) (OpaquePointer?) -> Result
    let cuCtxSynchronize: @convention(c) () -> Result
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Result
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<UInt64>, Int) -> Result
    let cuMemFree: @convention(c) (UInt64) -> Result
    let cuMemcpyHtoD: @convention(c) (UInt64, UnsafeRawPointer, Int) -> Result
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer, UInt64, Int) -> Result
    let cuMemcpyDtoD: @convention(c) (UInt64, UInt64, Int) -> Result
    let cuMemsetD8: @convention(c) (UInt64, UInt8, Int) -> Result
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> Result
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> Result
    let cuLaunchKernel: @convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Result
    let cuGetErrorString: @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result
    // Streams and graphs: a decode step is recorded once per batch size and replayed with one launch.
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Result
    let cuStreamSynchronize: @convention(c) (OpaquePointer?) -> Result
    let cuMemcpyHtoDAsync: @convention(c) (UInt64, UnsafeRawPointer, Int, OpaquePointer?) -> Result
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer, UInt64, Int, OpaquePointer?) -> Result
    let cuMemcpyDtoDAsync: @convention(c) (UInt64, UInt64, Int, OpaquePointer?) -> Result
    let cuStreamBeginCapture: @convention(c) (OpaquePointer?, Int32) -> Result
    let cuStreamEndCapture: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>) -> Result
    let cuGraphInstantiateWithFlags: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UInt64) -> Result
    let cuGraphLaunch: @convention(c) (OpaquePointer?, OpaquePointer?) -> Result
    let cuGraphDestroy: @convention(c) (OpaquePointer?) -> Result
    let cuGraphExecDestroy: @convention(c) (OpaquePointer?) -> Result
    let cuFuncSetAttribute: @convention(c) (OpaquePointer?, Int32, Int32) -> Result
    // Events: GPU-side timestamps for the per-operation profile.
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Result
    let cuEventRecord: @convention(c) (OpaquePointer?, OpaquePointer?) -> Result
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, OpaquePointer?, OpaquePointer?) -> Result
    // Page-locked host memory: copies from and to it run at full PCIe speed and need no staging by the driver.
    let cuMemAllocHost: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> Result
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Result
    /// Launch with attributes (programmatic dependent launch on sm_90+); nil on drivers older than CUDA 12.0.
    let cuLaunchKernelEx: (@convention(c) (UnsafeRawPointer, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                           UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Result)?
    /// A kernel parameter's offset and size (CUDA 12.4+; nil before): how many parameters a kernel takes.
    let cuFuncGetParamInfo: (@convention(c) (OpaquePointer?, Int, UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int>?) -> Result)?
    /// Loads a function of a lazily loaded module now (CUDA 12.4+), so that its parameters can be queried.
    let cuFuncLoad: (@convention(c) (OpaquePointer?) -> Result)?

    public init() throws(GPUError) {
        let lib = try DynamicLibrary(names: ["libcuda.so.1", "libcuda.so"], what: "the CUDA driver (libcuda.so.1)")
        library = lib
        cuInit = try lib.symbol("cuInit", as: type(of: cuInit))
        cuDeviceGetCount = try lib.symbol("cuDeviceGetCount", as: type(of: cuDeviceGetCount))
        cuDeviceGet = try lib.symbol("cuDeviceGet", as: type(of: cuDeviceGet))
        cuDeviceGetName = try lib.symbol("cuDeviceGetName", as: type(of: cuDeviceGetName))
        cuDeviceGetAttribute = try lib.symbol("cuDeviceGetAttribute", as: type(of: cuDeviceGetAttribute))
        cuDevicePrimaryCtxRetain = try lib.symbol("cuDevicePrimaryCtxRetain", as: type(of: cuDevicePrimaryCtxRetain))
        cuCtxSetCurrent = try lib.symbol("cuCtxSetCurrent", as: type(of: cuCtxSetCurrent))
        cuCtxSynchronize = try lib.symbol("cuCtxSynchronize", as: type(of: cuCtxSynchronize))
        cuMemGetInfo = try lib.symbol("cuMemGetInfo_v2", as: type(of: cuMemGetInfo))
        cuMemAlloc = try lib.symbol("cuMemAlloc_v2", as: type(of: cuMemAlloc))
        cuMemFree = try lib.symbol("cuMemFree_v2", as: type(of: cuMemFree))
        cuMemcpyHtoD = try lib.symbol("cuMemcpyHtoD_v2", as: type(of: cuMemcpyHtoD))
        cuMemcpyDtoH = try lib.symbol("cuMemcpyDtoH_v2", as: type(of: cuMemcpyDtoH))
        cuMemcpyDtoD = try lib.symbol("cuMemcpyDtoD_v2", as: type(of: cuMemcpyDtoD))
        cuMemsetD8 = try lib.symbol("cuMemsetD8_v2", as: type(of: cuMemsetD8))
        cuModuleLoadData = try lib.symbol("cuModuleLoadData", as: type(of: cuModuleLoadData))
        cuModuleGetFunction = try lib.symbol("cuModuleGetFunction", as: type(of: cuModuleGetFunction))
        cuLaunchKernel = try lib.symbol("cuLaunchKernel", as: type(of: cuLaunchKernel))
        cuGetErrorString = try lib.symbol("cuGetErrorString", as: type(of: cuGetErrorString))
        cuStreamCreate = try lib.symbol("cuStreamCreate", as: type(of: cuStreamCreate))
        cuStreamSynchronize = try lib.symbol("cuStreamSynchronize", as: type(of: cuStreamSynchronize))
        cuMemcpyHtoDAsync = try lib.symbol("cuMemcpyHtoDAsync_v2", as: type(of: cuMemcpyHtoDAsync))
        cuMemcpyDtoHAsync = try lib.symbol("cuMemcpyDtoHAsync_v2", as: type(of: cuMemcpyDtoHAsync))
        cuMemcpyDtoDAsync = try lib.symbol("cuMemcpyDtoDAsync_v2", as: type(of: cuMemcpyDtoDAsync))
        cuStreamBeginCapture = try lib.symbol("cuStreamBeginCapture_v2", as: type(of: cuStreamBeginCapture))
        cuStreamEndCapture = try lib.symbol("cuStreamEndCapture", as: type(of: cuStreamEndCapture))
        cuGraphInstantiateWithFlags = try lib.symbol("cuGraphInstantiateWithFlags", as: type(of: cuGraphInstantiateWithFlags))
        cuGraphLaunch = try lib.symbol("cuGraphLaunch", as: type(of: cuGraphLaunch))
        cuGraphDestroy = try lib.symbol("cuGraphDestroy", as: type(of: cuGraphDestroy))
        cuGraphExecDestroy = try lib.symbol("cuGraphExecDestroy", as: type(of: cuGraphExecDestroy))
        cuFuncSetAttribute = try lib.symbol("cuFuncSetAttribute", as: type(of: cuFuncSetAttribute))
        cuEventCreate = try lib.symbol("cuEventCreate", as: type(of: cuEventCreate))
        cuEventRecord = try lib.symbol("cuEventRecord", as: type(of: cuEventRecord))
        cuEventElapsedTime = try lib.symbol("cuEventElapsedTime", as: type(of: cuEventElapsedTime))
        cuMemAllocHost = try lib.symbol("cuMemAllocHost_v2", as: type(of: cuMemAllocHost))
        cuMemFreeHost = try lib.symbol("cuMemFreeHost", as: type(of: cuMemFreeHost))
        cuLaunchKernelEx = try? lib.symbol("cuLaunchKernelEx", as: (@convention(c) (UnsafeRawPointer, OpaquePointer?,
            UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Result).self)
        cuFuncLoad = try? lib.symbol("cuFuncLoad", as: (@convention(c) (OpaquePointer?) -> Result).self)
        cuFuncGetParamInfo = try? lib.symbol("cuFuncGetParamInfo", as: (@convention(c) (OpaquePointer?, Int, UnsafeMutablePointer<Int>?,
            UnsafeMutablePointer<Int>?) -> Result).self)
    }

    /// Turns a CUresult into an error naming the call.
    func check(_ result: Result, _ call: String) throws(GPUError) {
        guard result != 0 else { return }
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorString(result, &text)
        throw .call(call, code: result, message: text.map { String(cString: $0) } ?? "unknown error")
    }
}

/// NVRTC: CUDA C source to a cubin for the device's architecture, at run time.
public final class NVRTC: @unchecked Sendable {
    typealias Result = Int32
    let library: DynamicLibrary
    let createProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
                                       UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Result
    let compileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Result
    let getLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Result
    let getLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Result
    let getCubinSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Result
    let getCubin: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Result
    let destroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Result

    public init() throws(GPUError) {
        let lib = try DynamicLibrary(names: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], what: "NVRTC (libnvrtc.so)")
        library = lib
        createProgram = try lib.symbol("nvrtcCreateProgram", as: type(of: createProgram))
        compileProgram = try lib.symbol("nvrtcCompileProgram", as: type(of: compileProgram))
        getLogSize = try lib.symbol("nvrtcGetProgramLogSize", as: type(of: getLogSize))
        getLog = try lib.symbol("nvrtcGetProgramLog", as: type(of: getLog))
        getCubinSize = try lib.symbol("nvrtcGetCUBINSize", as: type(of: getCubinSize))
        getCubin = try lib.symbol("nvrtcGetCUBIN", as: type(of: getCubin))
        destroyProgram = try lib.symbol("nvrtcDestroyProgram", as: type(of: destroyProgram))
    }

    /// Compiles `source` for `sm_<arch>` and returns the cubin bytes.
    public func compile(_ source: String, name: String, arch: Int, options extra: [String] = []) throws(GPUError) -> [UInt8] {
        var program: OpaquePointer?
        let created = source.withCString { src in name.withCString { createProgram(&program, src, $0, 0, nil, nil) } }
        guard created == 0 else { throw .call("nvrtcCreateProgram", code: created, message: name) }
        defer { _ = destroyProgram(&program) }
        let options = ["--gpu-architecture=sm_\(arch)", "--std=c++17", "-default-device"] + extra
        let cStrings = options.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        let pointers = cStrings.map { UnsafePointer<CChar>($0) }
        let compiled = pointers.withUnsafeBufferPointer { compileProgram(program, Int32(options.count), $0.baseAddress) }
        if compiled != 0 {
            var size = 0
            _ = getLogSize(program, &size)
            var log = [CChar](repeating: 0, count: max(size, 1))
            _ = getLog(program, &log)
            throw .compile(name, log: String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        var size = 0
        _ = getCubinSize(program, &size)
        var cubin = [CChar](repeating: 0, count: size)
        _ = getCubin(program, &cubin)
        return cubin.map { UInt8(bitPattern: $0) }
    }
}

/// cuBLAS, for the GEMMs: bf16 inputs, fp32 accumulation.
public final class CuBLAS: @unchecked Sendable {
    public typealias Status = Int32
    let library: DynamicLibrary
    let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    public let gemmEx: @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafeRawPointer, UnsafeRawPointer?, Int32, Int32,
                                UnsafeRawPointer?, Int32, Int32, UnsafeRawPointer, UnsafeMutableRawPointer?, Int32, Int32, Int32, Int32) -> Status
    let setStream: @convention(c) (OpaquePointer?, OpaquePointer?) -> Status
    let setWorkspace: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int) -> Status
    public let handle: OpaquePointer?

    public static let r32F: Int32 = 0, r16BF: Int32 = 14, compute32F: Int32 = 68, opN: Int32 = 0, opT: Int32 = 1

    public init() throws(GPUError) {
        let lib = try DynamicLibrary(names: ["libcublas.so.13", "libcublas.so.12", "libcublas.so"], what: "cuBLAS (libcublas.so)")
        library = lib
        create = try lib.symbol("cublasCreate_v2", as: type(of: create))
        gemmEx = try lib.symbol("cublasGemmEx", as: type(of: gemmEx))
        setStream = try lib.symbol("cublasSetStream_v2", as: type(of: setStream))
        setWorkspace = try lib.symbol("cublasSetWorkspace_v2", as: type(of: setWorkspace))
        var h: OpaquePointer?
        let status = create(&h)
        guard status == 0 else { throw .call("cublasCreate_v2", code: status, message: "cuBLAS status \(status)") }
        handle = h
    }
}
