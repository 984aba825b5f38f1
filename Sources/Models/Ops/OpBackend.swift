/// The operations of a Llama forward pass, each on host arrays, so that any backend (the CPU kernels, the GPU
/// kernels, in any precision) can be checked op by op against `ReferenceOps` by `OpHarness`.
public protocol OpBackend: AnyObject {
    var name: String { get }
    /// y[rows × outputs] = x[rows × inputs] · Wᵀ; W row-major [outputs × inputs], given in fp32 (a backend stores
    /// it in its own format).
    func matmul(_ x: [Float], rows: Int, weight: [Float], outputs: Int) throws -> [Float]
    /// Each row of x / sqrt(mean(x²) + eps) · weight.
    func rmsNorm(_ x: [Float], rows: Int, weight: [Float], eps: Float) throws -> [Float]
    /// Rotate-half RoPE of x [rows × heads × headDim], row t at positions[t].
    func rope(_ x: [Float], positions: [Int], heads: Int, headDim: Int, inverseFrequencies: [Float]) throws -> [Float]
    /// silu(gate) · up, elementwise.
    func swiglu(gate: [Float], up: [Float]) throws -> [Float]
    /// Causal GQA attention of one sequence: q [rows × heads × headDim] at `positions`, k and v
    /// [positions 0..<n × kvHeads × headDim]; row t attends to positions 0...positions[t].
    func attention(q: [Float], k: [Float], v: [Float], positions: [Int], heads: Int, kvHeads: Int, headDim: Int) throws -> [Float]
    /// Each row's argmax (`Logits.argmax`: greedy sampling's choice) of logits [rows × (count / rows)].
    func argmax(_ logits: [Float], rows: Int) throws -> [Int]
}

extension OpBackend {
    /// On the host, as the engine's sampler picks.
    public func argmax(_ logits: [Float], rows: Int) throws -> [Int] {
        Logits.argmaxes(logits, rowLength: logits.count / rows)
    }
}
