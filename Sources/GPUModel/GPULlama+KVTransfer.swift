import Models

extension GPULlama: ForwardBackend {
    public func exportKV(blockTable: [Int], range: Range<Int>, into buffer: UnsafeMutablePointer<Float>) throws {
        try transfer(blockTable: blockTable, range: range, buffer: buffer, bufferTokens: range.count, bufferOffset: 0, toDevice: false)
    }

    public func importKV(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int, bufferOffset: Int) throws {
        try transfer(blockTable: blockTable, range: range, buffer: UnsafeMutablePointer(mutating: buffer), bufferTokens: bufferTokens,
                     bufferOffset: bufferOffset, toDevice: true)
    }

    /// One copy per run of consecutive slots in a block, per layer and side: the CPU cache's layout rule.
    private func transfer(blockTable: [Int], range: Range<Int>, buffer: UnsafeMutablePointer<Float>, bufferTokens: Int, bufferOffset: Int,
                          toDevice: Bool) throws {
        try gpu.makeCurrent()
        let layout = PagedLayout(layers: config.layers, blockSize: blockSize, kvDim: config.kvDim)
        try layout.forEachRun(blockTable: blockTable, range: range, bufferTokens: bufferTokens, bufferOffset: bufferOffset) { side, at, flatAt, count in
            let device = (side == 0 ? kCache : vCache) + UInt64(at * 4)
            if toDevice {
                try gpu.upload(buffer + flatAt, bytes: count * 4, to: device)
            } else {
                try gpu.download(device, bytes: count * 4, into: buffer + flatAt)
            }
        }
    }
}
