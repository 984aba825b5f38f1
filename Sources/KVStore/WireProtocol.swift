import NIOCore

/// The `lm://` wire protocol of LMCache's demo-era server ("v1": 8-int header) and its predecessor ("v0": 2-int
/// header). All integers are little-endian Int32; keys travel in a fixed 150-byte field padded with spaces.
public enum WireProtocol: String, Sendable, CaseIterable {
    case v0
    case v1

    /// Bytes of a request header: the ints plus the 150-byte key field.
    public var requestHeaderSize: Int { self == .v1 ? 8 * 4 + WireConstants.keyFieldSize : 2 * 4 + WireConstants.keyFieldSize }
    /// Bytes of a reply header.
    public var replyHeaderSize: Int { self == .v1 ? 8 * 4 : 2 * 4 }
}

public enum WireConstants {
    public static let keyFieldSize = 150
    /// Frames carry their length as Int32; keep a margin below Int32.max.
    public static let maxFrameLength = Int(Int32.max) - 4096
}

public enum StoreCommand: Int32, Sendable {
    case put = 1
    case get = 2
    case exist = 3
    case list = 4
    case health = 5
}

public enum ReplyCode {
    public static let success: Int32 = 200
    public static let failure: Int32 = 400
}

/// What a PUT declared about its payload; the server treats it as opaque and echoes it on GET.
public struct ObjectMetadata: Sendable, Hashable {
    public var fmt: Int32
    public var dtype: Int32
    public var shape: (Int32, Int32, Int32, Int32)

    public init(fmt: Int32 = 1, dtype: Int32 = 2, shape: (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)) {
        self.fmt = fmt
        self.dtype = dtype
        self.shape = shape
    }

    /// The metadata clients send on GET/EXIST and servers return on misses.
    public static let empty = ObjectMetadata()

    public static func == (a: ObjectMetadata, b: ObjectMetadata) -> Bool {
        a.fmt == b.fmt && a.dtype == b.dtype && a.shape.0 == b.shape.0 && a.shape.1 == b.shape.1
            && a.shape.2 == b.shape.2 && a.shape.3 == b.shape.3
    }

    public func hash(into hasher: inout Hasher) {
        for v in [fmt, dtype, shape.0, shape.1, shape.2, shape.3] { hasher.combine(v) }
    }
}

/// A stored value: opaque payload bytes plus the metadata they were PUT with.
public struct StoredObject: Sendable {
    public var metadata: ObjectMetadata
    public var payload: ByteBuffer

    public init(metadata: ObjectMetadata, payload: ByteBuffer) {
        self.metadata = metadata
        self.payload = payload
    }
}

/// Why a key cannot travel on the wire.
public enum KeyError: Error, Equatable, CustomStringConvertible {
    case empty
    case tooLong(bytes: Int)
    case notUTF8

    public var description: String {
        switch self {
        case .empty: return "key is empty"
        case .tooLong(let n): return "key is \(n) bytes, longer than \(WireConstants.keyFieldSize)"
        case .notUTF8: return "key is not valid UTF-8"
        }
    }
}

extension ByteBuffer {
    mutating func writeLE(_ value: Int32) {
        writeInteger(value, endianness: .little)
    }

    mutating func readLE() -> Int32? {
        readInteger(endianness: .little, as: Int32.self)
    }

    /// Writes `key` into the fixed key field, right-padded with ASCII spaces as the reference client does.
    mutating func writeKeyField(_ key: String) throws(KeyError) {
        let bytes = Array(key.utf8)
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.count <= WireConstants.keyFieldSize else { throw .tooLong(bytes: bytes.count) }
        writeBytes(bytes)
        writeRepeatingByte(0x20, count: WireConstants.keyFieldSize - bytes.count)
    }

    /// Reads the key field; the server strips surrounding whitespace (and NULs some clients pad with).
    mutating func readKeyField() throws(KeyError) -> String {
        guard let bytes = readBytes(length: WireConstants.keyFieldSize) else { throw .empty }
        let isPadding: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x00 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let first = bytes.firstIndex(where: { !isPadding($0) }),
              let last = bytes.lastIndex(where: { !isPadding($0) })
        else { throw .empty }
        guard let key = String(validating: bytes[first...last], as: UTF8.self) else { throw .notUTF8 }
        return key
    }

    mutating func writeReplyHeader(_ proto: WireProtocol, code: Int32, length: Int, metadata: ObjectMetadata) {
        writeLE(code)
        writeLE(Int32(length))
        guard proto == .v1 else { return }
        writeLE(metadata.fmt)
        writeLE(metadata.dtype)
        writeLE(metadata.shape.0)
        writeLE(metadata.shape.1)
        writeLE(metadata.shape.2)
        writeLE(metadata.shape.3)
    }
}
