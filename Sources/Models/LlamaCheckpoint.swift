import Foundation
import ModelFiles
import TensorKit
#if canImport(Glibc)
import Glibc
#endif

/// A Llama-family checkpoint opened but not loaded: where its tensors are, how they are named, its config and RoPE
/// frequencies. The CPU model and the GPU backend both load from this.
public struct LlamaCheckpoint: Sendable {
    public let store: any TensorStore
    public let naming: LlamaWeights.Naming
    public let config: ModelConfig
    public let inverseFrequencies: [Float]

    /// A GGUF file or a Hugging Face folder.
    public static func open(_ path: String) throws(ModelFileError) -> LlamaCheckpoint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw .io(path: path, "no such file or folder") }
        return isDirectory.boolValue ? try LlamaCheckpoint(huggingFace: path) : try LlamaCheckpoint(gguf: GGUFFile(path: path))
    }

    public init(huggingFace directory: String) throws(ModelFileError) {
        let config = try ModelConfig(huggingFace: directory + "/config.json")
        self.init(store: try SafetensorsCheckpoint(directory: directory), naming: .huggingFace, config: config,
                  inverseFrequencies: Self.frequencies(config, divisors: nil))
    }

    public init(gguf: GGUFFile) throws(ModelFileError) {
        var config = try ModelConfig(gguf: gguf)
        // Llama 3 GGUFs carry their RoPE scaling as per-frequency divisors (`rope_freqs.weight`).
        var divisors: [Float]?
        if let info = gguf.tensors["rope_freqs.weight"] {
            guard info.dimensions == [config.headDim / 2] else {
                throw .malformed(path: gguf.path, field: "rope_freqs.weight", "shape \(info.dimensions), expected [\(config.headDim / 2)]")
            }
            divisors = Dequantize.tensor(gguf, info)
            config.ropeScaling = nil
        }
        self.init(store: gguf, naming: .gguf, config: config, inverseFrequencies: Self.frequencies(config, divisors: divisors))
    }

    init(store: any TensorStore, naming: LlamaWeights.Naming, config: ModelConfig, inverseFrequencies: [Float]) {
        self.store = store
        self.naming = naming
        self.config = config
        self.inverseFrequencies = inverseFrequencies
    }

    /// θ^(−2i/d), then Llama 3 scaling or a GGUF's per-frequency divisors.
    static func frequencies(_ config: ModelConfig, divisors: [Float]?) -> [Float] {
        let half = config.headDim / 2
        var f = (0..<half).map { i in powf(config.ropeTheta, -Float(2 * i) / Float(config.headDim)) }
        if let scaling = config.ropeScaling { f = scaling.apply(f) }
        if let divisors { f = zip(f, divisors).map { $0 / $1 } }
        return f
    }

    /// Whether Q/K rows must be un-permuted (llama-arch GGUFs store them for adjacent-pair RoPE).
    public var permutedQK: Bool { naming == .gguf && (config.architecture == "llama" || config.architecture == "mistral") }
}
