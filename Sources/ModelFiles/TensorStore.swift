/// A file (or set of files) of named tensors, mapped in place: GGUF files and safetensors checkpoints both serve
/// weights through this, so the model code does not care where a tensor came from. `GGUFTensorInfo.dimensions`
/// are always in GGUF order (the contiguous dimension first).
public protocol TensorStore: Sendable {
    var path: String { get }
    var tensors: [String: GGUFTensorInfo] { get }
    func bytes(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer
}

extension GGUFFile: TensorStore {}
