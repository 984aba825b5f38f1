/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable {
    case int(Int64)
    case uint(UInt64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    public var intValue: Int? {
        switch self {
        case .int(let v): return Int(exactly: v)
        case .uint(let v): return Int(exactly: v)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .float(let v): return v
        case .int(let v): return Double(v)
        case .uint(let v): return Double(v)
        default: return nil
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [GGUFValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}

/// Where a tensor's bytes are in the file, and what they are.
public struct GGUFTensorInfo: Sendable, Equatable {
    public var name: String
    /// Dimensions in GGUF order: the first is the contiguous one (a [rows × cols] matrix is `[cols, rows]`).
    public var dimensions: [Int]
    public var type: GGMLType
    /// Absolute byte offset in the file.
    public var offset: Int
    public var byteCount: Int

    public var elementCount: Int { dimensions.reduce(1, *) }

    public init(name: String, dimensions: [Int], type: GGMLType, offset: Int, byteCount: Int) {
        (self.name, self.dimensions, self.type, self.offset, self.byteCount) = (name, dimensions, type, offset, byteCount)
    }
}

/// A GGUF v2/v3 file: metadata, tensor directory, and the mapped bytes, every offset checked against the file size.
public final class GGUFFile: Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    public let tensors: [String: GGUFTensorInfo]
    /// Tensor names in file order.
    public let tensorNames: [String]
    public let alignment: Int
    let file: MappedFile

    static let maxDimensions = 4
    static let maxArrayElements = 1 << 28
    static let maxTensorCount = 1 << 20

    public convenience init(path: String) throws(ModelFileError) {
        try self.init(file: MappedFile(path: path))
    }

    init(file: MappedFile) throws(ModelFileError) {
        self.file = file
        path = file.path
        var cursor = ByteCursor(bytes: file.bytes, path: file.path)
        let magic = try cursor.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {  // "GGUF"
            throw .malformed(path: path, field: "magic", "not a GGUF file (magic 0x\(String(magic, radix: 16)))")
        }
        version = try cursor.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw .unsupported(path: path, field: "version", "GGUF version \(version)") }
        let tensorCount = try cursor.read(UInt64.self, "tensor_count")
        let kvCount = try cursor.read(UInt64.self, "metadata_kv_count")
        guard tensorCount <= UInt64(Self.maxTensorCount) else {
            throw .malformed(path: path, field: "tensor_count", "\(tensorCount) tensors")
        }
        guard kvCount <= UInt64(cursor.remaining / 12) else {
            throw .malformed(path: path, field: "metadata_kv_count", "\(kvCount) entries cannot fit in the file")
        }
        var metadata: [String: GGUFValue] = [:]
        for i in 0..<Int(kvCount) {
            let key = try cursor.readString("metadata key #\(i)")
            let type = try cursor.read(UInt32.self, key + " type")
            metadata[key] = try Self.readValue(type: type, &cursor, field: key)
        }
        self.metadata = metadata
        let alignment = metadata["general.alignment"]?.intValue ?? 32
        guard alignment > 0, alignment.nonzeroBitCount == 1, alignment <= 1 << 20 else {
            throw .malformed(path: path, field: "general.alignment", "\(alignment) is not a power of two")
        }
        self.alignment = alignment

        var infos: [(String, [Int], GGMLType, UInt64)] = []
        for i in 0..<Int(tensorCount) {
            let name = try cursor.readString("tensor #\(i) name")
            let nDims = try cursor.read(UInt32.self, name + " n_dims")
            guard (1...UInt32(Self.maxDimensions)).contains(nDims) else {
                throw .malformed(path: path, field: name + " n_dims", "\(nDims) dimensions")
            }
            var dims: [Int] = []
            for d in 0..<Int(nDims) {
                let dim = try cursor.read(UInt64.self, "\(name) dimension \(d)")
                guard dim > 0, dim <= UInt64(1 << 32) else { throw .malformed(path: path, field: "\(name) dimension \(d)", "\(dim)") }
                dims.append(Int(dim))
            }
            let rawType = try cursor.read(UInt32.self, name + " type")
            guard let type = GGMLType(rawValue: rawType) else {
                throw .unsupported(path: path, field: name + " type", "ggml type \(rawType)")
            }
            infos.append((name, dims, type, try cursor.read(UInt64.self, name + " offset")))
        }
        let dataStart = (cursor.offset + alignment - 1) / alignment * alignment
        var tensors: [String: GGUFTensorInfo] = [:]
        for (name, dims, type, relative) in infos {
            let (elements, overflow) = dims.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            guard !overflow, let size = type.byteCount(elements: elements) else {
                throw .malformed(path: path, field: name + " dimensions", "\(dims) do not form whole \(type) blocks")
            }
            guard relative % UInt64(alignment) == 0, relative <= UInt64(file.bytes.count),
                  dataStart + Int(relative) + size <= file.bytes.count
            else {
                throw .malformed(path: path, field: name + " offset",
                                 "\(relative) + \(size) bytes runs past the end of the file (\(file.bytes.count) bytes)")
            }
            guard tensors[name] == nil else { throw .malformed(path: path, field: name, "tensor defined twice") }
            tensors[name] = GGUFTensorInfo(name: name, dimensions: dims, type: type, offset: dataStart + Int(relative), byteCount: size)
        }
        self.tensors = tensors
        tensorNames = infos.map(\.0)
    }

    /// The raw bytes of a tensor, in place in the mapped file.
    public func bytes(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[tensor.offset..<tensor.offset + tensor.byteCount])
    }

    public func string(_ key: String) -> String? { metadata[key]?.stringValue }
    public func int(_ key: String) -> Int? { metadata[key]?.intValue }
    public func double(_ key: String) -> Double? { metadata[key]?.doubleValue }

    /// A required metadata value, or an error naming the file and the key.
    public func require<T>(_ key: String, _ get: (GGUFValue) -> T?) throws(ModelFileError) -> T {
        guard let value = metadata[key] else { throw .malformed(path: path, field: key, "missing") }
        guard let typed = get(value) else { throw .malformed(path: path, field: key, "unexpected type \(value)") }
        return typed
    }

    private static func readValue(type: UInt32, _ c: inout ByteCursor, field: String) throws(ModelFileError) -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try c.read(UInt8.self, field)))
        case 1: return .int(Int64(try c.read(Int8.self, field)))
        case 2: return .uint(UInt64(try c.read(UInt16.self, field)))
        case 3: return .int(Int64(try c.read(Int16.self, field)))
        case 4: return .uint(UInt64(try c.read(UInt32.self, field)))
        case 5: return .int(Int64(try c.read(Int32.self, field)))
        case 6: return .float(Double(try c.readFloat(field)))
        case 7:
            let b = try c.read(UInt8.self, field)
            guard b <= 1 else { throw .malformed(path: c.path, field: field, "bool value \(b)") }
            return .bool(b == 1)
        case 8: return .string(try c.readString(field))
        case 9:
            let elementType = try c.read(UInt32.self, field + " element type")
            let count = try c.read(UInt64.self, field + " count")
            guard elementType != 9 else { throw .unsupported(path: c.path, field: field, "nested arrays") }
            // Every element takes at least one byte: a count beyond the bytes left is a lie.
            guard count <= UInt64(min(c.remaining, maxArrayElements)) else {
                throw .malformed(path: c.path, field: field, "array of \(count) elements cannot fit in the file")
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { values.append(try readValue(type: elementType, &c, field: field)) }
            return .array(values)
        case 10: return .uint(try c.read(UInt64.self, field))
        case 11: return .int(try c.read(Int64.self, field))
        case 12: return .float(try c.readDouble(field))
        default: throw .unsupported(path: c.path, field: field, "metadata value type \(type)")
        }
    }
}
