/// Device and page-locked host allocations that are freed together when the owner goes (a model's weights, KV cache
/// and scratch), also when the owner's initializer fails halfway.
public final class DeviceMemory: @unchecked Sendable {
    public let gpu: GPUContext
    private var device: [UInt64] = []
    private var host: [UnsafeMutableRawPointer] = []

    public init(_ gpu: GPUContext) { self.gpu = gpu }

    public func allocate(_ bytes: Int) throws(GPUError) -> UInt64 {
        let ptr = try gpu.allocate(bytes)
        device.append(ptr)
        return ptr
    }

    public func allocateHost(_ bytes: Int) throws(GPUError) -> UnsafeMutableRawPointer {
        let ptr = try gpu.allocateHost(bytes)
        host.append(ptr)
        return ptr
    }

    /// A copy of `values` on the device.
    public func upload<T>(_ values: [T]) throws -> UInt64 {
        let ptr = try allocate(values.count * MemoryLayout<T>.stride)
        try values.withUnsafeBytes { raw in
            if let base = raw.baseAddress { try gpu.upload(base, bytes: raw.count, to: ptr) }
        }
        return ptr
    }

    deinit {
        device.forEach(gpu.free)
        host.forEach(gpu.freeHost)
    }
}
