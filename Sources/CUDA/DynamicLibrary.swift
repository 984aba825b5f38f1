import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A shared library opened at run time, so the binary builds and runs without the CUDA SDK and uses a GPU only
/// where the driver and libraries are present.
public final class DynamicLibrary: @unchecked Sendable {
    public let path: String
    private let handle: UnsafeMutableRawPointer

    /// Tries each name in each search directory (and the loader's own search), first hit wins.
    public init(names: [String], what: String) throws(GPUError) {
        var tried: [String] = []
        for candidate in Self.candidates(names) {
            tried.append(candidate)
            if let handle = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                self.handle = handle
                path = candidate
                return
            }
        }
        throw .libraryMissing(what: what, tried: tried)
    }

    /// The usual places: `CUDA_HOME`, `LD_LIBRARY_PATH`, /usr/local/cuda*, then the plain name for the dynamic loader.
    static func candidates(_ names: [String]) -> [String] {
        let env = ProcessInfo.processInfo.environment
        var dirs: [String] = []
        for home in [env["CUDA_HOME"], env["CUDA_PATH"]].compactMap({ $0 }) {
            dirs += [home + "/lib64", home + "/lib", home + "/targets/x86_64-linux/lib"]
        }
        dirs += (env["LD_LIBRARY_PATH"] ?? "").split(separator: ":").map(String.init)
        let local = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/local")) ?? [])
            .filter { $0.hasPrefix("cuda") }.sorted(by: >)
        for d in local { dirs += ["/usr/local/\(d)/targets/x86_64-linux/lib", "/usr/local/\(d)/lib64"] }
        dirs += ["/usr/lib/x86_64-linux-gnu", "/usr/lib64"]
        var out: [String] = []
        for name in names {
            for dir in dirs where !dir.isEmpty { out.append(dir + "/" + name) }
        }
        return out + names
    }

    /// A C function of the library, as the given `@convention(c)` type.
    public func symbol<T>(_ name: String, as type: T.Type) throws(GPUError) -> T {
        guard let pointer = dlsym(handle, name) else { throw .symbolMissing(library: path, name: name) }
        return unsafeBitCast(pointer, to: type)
    }
}

/// Everything the GPU layer can report, always naming the library or call.
public enum GPUError: Error, CustomStringConvertible, Equatable {
    case libraryMissing(what: String, tried: [String])
    case symbolMissing(library: String, name: String)
    case call(String, code: Int32, message: String)
    case compile(String, log: String)
    case noDevice
    case outOfMemory(requested: Int, free: Int)

    public var description: String {
        switch self {
        case .libraryMissing(let what, let tried):
            return "\(what) not found (set CUDA_HOME or LD_LIBRARY_PATH); tried \(tried.prefix(4).joined(separator: ", "))\(tried.count > 4 ? ", …" : "")"
        case .symbolMissing(let library, let name): return "\(library) has no symbol \(name)"
        case .call(let name, let code, let message): return "\(name) failed: \(code) \(message)"
        case .compile(let name, let log): return "NVRTC could not compile \(name):\n\(log)"
        case .noDevice: return "no CUDA device"
        case .outOfMemory(let requested, let free): return "out of device memory: \(requested) bytes requested, \(free) free"
        }
    }
}
