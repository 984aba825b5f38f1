#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. Weights are used in place from it: loading a model costs page faults,
/// not copies.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws(ModelFileError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(path: path, String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw .io(path: path, "mmap: " + String(cString: strerror(errno)))
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// Why a model file cannot be used; always names the file and, where it applies, the field.
public enum ModelFileError: Error, CustomStringConvertible, Equatable {
    case io(path: String, String)
    case malformed(path: String, field: String, String)
    case unsupported(path: String, field: String, String)

    public var description: String {
        switch self {
        case .io(let path, let why): return "\(path): \(why)"
        case .malformed(let path, let field, let why): return "\(path): malformed \(field): \(why)"
        case .unsupported(let path, let field, let why): return "\(path): unsupported \(field): \(why)"
        }
    }
}

/// A bounds-checked little-endian cursor over a mapped file: every read past the end is an error naming the field.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset = 0

    var remaining: Int { bytes.count - offset }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: String) throws(ModelFileError) -> T {
        guard remaining >= MemoryLayout<T>.size else { throw truncated(field) }
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return value
    }

    mutating func readFloat(_ field: String) throws(ModelFileError) -> Float {
        Float(bitPattern: try read(UInt32.self, field))
    }

    mutating func readDouble(_ field: String) throws(ModelFileError) -> Double {
        Double(bitPattern: try read(UInt64.self, field))
    }

    /// A length-prefixed (u64) UTF-8 string.
    mutating func readString(_ field: String) throws(ModelFileError) -> String {
        let length = try read(UInt64.self, field + " length")
        guard length <= UInt64(remaining) else {
            throw .malformed(path: path, field: field, "string of \(length) bytes runs past the end of the file")
        }
        let n = Int(length)
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]), as: UTF8.self)
        offset += n
        return s
    }

    mutating func skip(_ count: Int, _ field: String) throws(ModelFileError) {
        guard count >= 0, count <= remaining else { throw truncated(field) }
        offset += count
    }

    func truncated(_ field: String) -> ModelFileError {
        .malformed(path: path, field: field, "file ends at byte \(bytes.count), before the field (offset \(offset))")
    }
}
