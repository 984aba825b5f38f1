import Foundation

/// A Hugging Face safetensors checkpoint: one `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json`. Each file is `u64 header length | JSON header | data`; every offset is checked
/// against the file, and dtypes F32, F16 and BF16 are served in place.
public final class SafetensorsCheckpoint: TensorStore {
    public let path: String
    public let tensors: [String: GGUFTensorInfo]
    private let files: [MappedFile]
    private let fileOfTensor: [String: Int]

    /// `directory` holds `model.safetensors` or `model.safetensors.index.json` and its shards.
    public init(directory: String) throws(ModelFileError) {
        path = directory
        let index = directory + "/model.safetensors.index.json"
        var shardNames: [String]
        if FileManager.default.fileExists(atPath: index) {
            guard let data = FileManager.default.contents(atPath: index),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = json["weight_map"] as? [String: String] else {
                throw .malformed(path: index, field: "weight_map", "not a JSON object of tensor name → shard file")
            }
            shardNames = Array(Set(map.values)).sorted()
            for name in shardNames where name.contains("/") || name.hasPrefix(".") {
                throw .malformed(path: index, field: "weight_map", "shard '\(name)' is not a file name in the folder")
            }
        } else {
            shardNames = ["model.safetensors"]
        }
        var files: [MappedFile] = []
        var tensors: [String: GGUFTensorInfo] = [:]
        var fileOfTensor: [String: Int] = [:]
        for (i, name) in shardNames.enumerated() {
            let file = try MappedFile(path: directory + "/" + name)
            for info in try Self.parseHeader(file) {
                guard tensors[info.name] == nil else { throw .malformed(path: file.path, field: info.name, "tensor defined twice") }
                tensors[info.name] = info
                fileOfTensor[info.name] = i
            }
            files.append(file)
        }
        self.files = files
        self.tensors = tensors
        self.fileOfTensor = fileOfTensor
    }

    public func bytes(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let file = files[fileOfTensor[tensor.name]!]
        return UnsafeRawBufferPointer(rebasing: file.bytes[tensor.offset..<tensor.offset + tensor.byteCount])
    }

    static func parseHeader(_ file: MappedFile) throws(ModelFileError) -> [GGUFTensorInfo] {
        let bytes = file.bytes
        guard bytes.count >= 8 else { throw .malformed(path: file.path, field: "header length", "file shorter than 8 bytes") }
        let headerLength = Int(bytes.loadUnaligned(as: UInt64.self).littleEndian)
        guard headerLength > 1, headerLength <= bytes.count - 8, headerLength < 100 << 20 else {
            throw .malformed(path: file.path, field: "header length", "\(headerLength) does not fit the file (\(bytes.count) bytes)")
        }
        let headerData = Data(bytes[8..<8 + headerLength])
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw .malformed(path: file.path, field: "header", "not a JSON object")
        }
        let dataStart = 8 + headerLength
        var out: [GGUFTensorInfo] = []
        for (name, value) in header where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw .malformed(path: file.path, field: name, "entry needs dtype, shape and data_offsets")
            }
            let type: GGMLType
            switch dtype {
            case "F32": type = .f32
            case "F16": type = .f16
            case "BF16": type = .bf16
            default: throw .unsupported(path: file.path, field: name, "dtype \(dtype) (F32, F16, BF16 are supported)")
            }
            guard shape.allSatisfy({ $0 > 0 && $0 < 1 << 31 }), shape.count <= 4 else {
                throw .malformed(path: file.path, field: name, "shape \(shape)")
            }
            let elements = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end <= bytes.count - dataStart, end - begin == elements * type.blockBytes else {
                throw .malformed(path: file.path, field: name, "data_offsets \(offsets) do not match shape \(shape) × \(dtype) or the file size")
            }
            out.append(GGUFTensorInfo(name: name, dimensions: Array(shape.reversed()), type: type, offset: dataStart + begin,
                                      byteCount: end - begin))
        }
        return out
    }
}
