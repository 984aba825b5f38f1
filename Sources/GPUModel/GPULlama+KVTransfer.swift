import Models

extension GPULlama: ForwardBackend {
    public func exportKV(blockTable: [Int], range: Range<Int>, into buffer: UnsafeMutablePointer<Float>) throws {
        try transfer(blockTable: blockTable, range: range, buffer: buffer, bufferTokens: range.count, bufferOffset: 0, toDevice: false)
    }

    public func importKV(blockTable: [Int], range: Range<Int>, from buffer: UnsafePointer<Float>, bufferTokens: Int, bufferOffset: Int) throws {
        try transfer(blockTable: blockTable, range: range, buffer: UnsafeMutablePointer(mutating: buffer), bufferTokens: bufferTokens,
                     bufferOffset: bufferOffset, toDevice: true)
        guard kShadow != 0, !range.isEmpty else { return }
        // The bf16 shadow of every block written, whole blocks (all layers), one launch per run of consecutive block ids.
        let blockFloats = config.layers * blockSize * config.kvDim
        let ids = Set((range.lowerBound / blockSize...(range.upperBound - 1) / blockSize).map { blockTable[$0] }).sorted()
        var start = 0
        while start < ids.count {
            var end = start + 1
            while end < ids.count && ids[end] == ids[end - 1] + 1 { end += 1 }
            let first = ids[start], n = (end - start) * blockFloats
            for (source, shadow) in [(kCache, kShadow), (vCache, vShadow)] {
                try gpu.launch(functions["to_bf16"]!, grid: (UInt32((n + 255) / 256), 1, 1), block: (256, 1, 1),
                               [.pointer(source + UInt64(first * blockFloats * 4)), .pointer(shadow + UInt64(first * blockFloats * 2)),
                                .int64(Int64(n))], name: "to_bf16")
            }
            start = end
        }
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
