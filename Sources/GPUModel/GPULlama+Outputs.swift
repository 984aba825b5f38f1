import CUDA
import Models

/// What a step hands back to the host: the logits rows, their argmaxes, tokens drawn on the device, or a mix (one
/// output per row, as the engine asks for them); and draws from given rows, for gpu-check.
extension GPULlama {
    /// One forward pass; returns the requested logits rows [rows × vocab] (fp32, on the host).
    public func forward(_ batch: [SequenceStep]) throws -> [Float] {
        let rows = batch.reduce(0) { $0 + $1.logitRowCount }
        return try forward(batch, outputs: [RowOutput](repeating: .logits, count: rows)) { _, _, logits in Array(logits) }
    }

    /// One forward pass; returns the index of each requested logits row's largest logit (as the engine's greedy
    /// sampler picks it), computed on the device: one int a row crosses to the host instead of the vocabulary.
    public func forwardArgmax(_ batch: [SequenceStep]) throws -> [Int] {
        let rows = batch.reduce(0) { $0 + $1.logitRowCount }
        return try forward(batch, outputs: [RowOutput](repeating: .argmax, count: rows)) { tokens, _, _ in tokens }
    }

    /// One forward pass; the `.argmax` rows' argmaxes (`argmax_rows`) and the `.draw` rows' tokens (`draw_rows`, with
    /// their log-probabilities where asked) computed on the device, one int a row to the host; the `.logits` rows
    /// copied into page-locked memory (one copy per run of consecutive rows) and handed to `body` there, without a
    /// copy into a Swift array.
    public func forward<R>(_ batch: [SequenceStep], outputs: [RowOutput],
                           _ body: (_ tokens: [Int], _ logprobs: [DrawnLogprobs?], _ logits: UnsafeMutableBufferPointer<Float>) throws -> R) throws -> R {
        let none = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
        guard let rows = try enqueueStep(batch) else { return try body([], [], none) }
        defer { if profile != nil { try? endProfiledStep() } }
        precondition(outputs.count == rows, "one output per requested logits row")
        guard rows > 0 else { return try body([], [], none) }
        let V = config.vocabSize
        var tokens: [Int] = [], logprobs: [DrawnLogprobs?] = []
        if outputs.contains(where: { !$0.needsLogits }) {
            if outputs.contains(.argmax) {
                try timed("argmax_rows") { try argmax.launch(functions["argmax_rows"]!, logits: logits, rows: rows, vocab: V) }
            }
            let drawn = outputs.indices.compactMap { r -> (row: Int, draw: DeviceDraw)? in
                if case .draw(let d) = outputs[r] { (r, d) } else { nil }
            }
            if !drawn.isEmpty {
                precondition(drawsOnDevice, "draw rows asked of a backend with device sampling off")
                try timed("draw_rows") { try drawing!.launch(draws: drawn, logits: logits, out: argmax.out) }
            }
            let withLogprobs = drawn.count { $0.draw.logprobs != nil }
            var drawnLogprobs: [DrawnLogprobs] = []
            if withLogprobs > 0 { try timed("download logprobs") { drawnLogprobs = try drawing!.downloadLogprobs(withLogprobs) } }
            try timed("download tokens") { try gpu.download(argmax.out, bytes: rows * 4, into: hostArgmaxes) }
            let all = hostArgmaxes.assumingMemoryBound(to: Int32.self)
            var next = 0
            for r in outputs.indices where !outputs[r].needsLogits {
                tokens.append(Int(all[r]))
                if case .draw(let d) = outputs[r], d.logprobs != nil {
                    logprobs.append(drawnLogprobs[next])
                    next += 1
                } else {
                    logprobs.append(nil)
                }
            }
        }
        var kept = 0
        if outputs.contains(.logits) {
            try timed("download logits") {
                var r = 0
                while r < rows {
                    guard outputs[r].needsLogits else { r += 1; continue }
                    var end = r + 1
                    while end < rows && outputs[end].needsLogits { end += 1 }
                    try gpu.downloadAsync(logits + UInt64(r * V * 4), bytes: (end - r) * V * 4, into: hostLogits + kept * V * 4)
                    kept += end - r
                    r = end
                }
                try gpu.synchronize()
            }
        }
        return try body(tokens, logprobs, UnsafeMutableBufferPointer(start: hostLogits.assumingMemoryBound(to: Float.self), count: kept * V))
    }

    /// Draws on the device from the given logits rows (uploaded into the logits buffer; `vocabSize` floats each, at
    /// most `maxLogitRows`), `perLaunch` draws a launch (at most `maxLogitRows`), `repeats` times over (the last
    /// launch's results returned): each draw's token, and its log-probabilities where it asks for them. gpu-check
    /// compares draw_rows with the exact reference, across launch shapes, and with the host's log-probabilities, and
    /// times it.
    public func drawOnDevice(rows: [Float], draws: [(row: Int, draw: DeviceDraw)], repeats: Int = 1,
                             perLaunch: Int? = nil) throws -> [(token: Int, logprobs: DrawnLogprobs?)] {
        try gpu.makeCurrent()
        let V = config.vocabSize
        guard let drawing else { throw GPUError.compile("sampling", log: "draw_rows could not be built at load (the warning printed then says why)") }
        precondition(rows.count % V == 0 && rows.count / V <= maxLogitRows && draws.allSatisfy { $0.row < rows.count / V })
        try rows.withUnsafeBytes { try gpu.upload($0.baseAddress!, bytes: $0.count, to: logits) }
        var results: [(token: Int, logprobs: DrawnLogprobs?)] = []
        let step = min(maxLogitRows, max(1, perLaunch ?? maxLogitRows))
        for start in stride(from: 0, to: draws.count, by: step) {
            let part = Array(draws[start..<min(draws.count, start + step)])
            for _ in 0..<repeats {
                try drawing.launch(draws: part, logits: logits, out: argmax.out, byDraw: true)
            }
            var reported = try drawing.downloadLogprobs(part.count { $0.draw.logprobs != nil })[...]
            try gpu.download(argmax.out, bytes: part.count * 4, into: hostArgmaxes)
            let all = hostArgmaxes.assumingMemoryBound(to: Int32.self)
            for (i, d) in part.enumerated() {
                results.append((Int(all[i]), d.draw.logprobs != nil ? reported.removeFirst() : nil))
            }
        }
        return results
    }
}
