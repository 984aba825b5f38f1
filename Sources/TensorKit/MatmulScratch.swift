/// Working memory the matmuls of one forward pass share (quantized activation rows and their block scales): grown
/// to the largest request and reused, so a step allocates it once instead of once per matmul. One caller at a time.
public final class MatmulScratch: @unchecked Sendable {
    private var buffer: UnsafeMutableRawPointer?
    private var capacity = 0

    public init() {}

    deinit { buffer?.deallocate() }

    /// At least `bytes` bytes, 64-byte aligned, valid until the next call.
    func reserve(_ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > capacity {
            buffer?.deallocate()
            capacity = max(bytes, 2 * capacity)
            buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        }
        return buffer!
    }
}
