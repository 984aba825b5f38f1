import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Blocking file operations of the disk tier. One file per entry, named by the base64url of its key.
/// Writes go to a temporary file that is renamed into place, so a crash never leaves a half-written entry under a
/// servable name; reads validate magic and lengths against the file size, so a torn file is a miss, never garbage.
///
/// File layout (little-endian): "SWKV", version u32, fmt, dtype, shape0..3 (i32), key length u32,
/// payload length u64, key bytes, payload bytes.
struct DiskTier: Sendable {
    let directory: String
    private static let magic: [UInt8] = Array("SWKV".utf8)
    private static let version: UInt32 = 1
    private static let fixedHeaderSize = 4 + 4 + 6 * 4 + 4 + 8
    private static let tempPrefix = ".tmp-"

    struct Entry {
        var key: String
        var fileSize: Int
        var modified: Date
    }

    enum DiskError: Error, CustomStringConvertible {
        case io(String, path: String)
        case corrupt(String, path: String)

        var description: String {
            switch self {
            case .io(let what, let path): return "\(what) failed for \(path): \(String(cString: strerror(errno)))"
            case .corrupt(let why, let path): return "corrupt entry \(path): \(why)"
            }
        }
    }

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func path(for key: String) -> String {
        let name = Data(key.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return directory + "/" + name + ".kv"
    }

    /// Bytes the entry occupies on disk (what the disk budget counts).
    static func fileSize(key: String, payloadBytes: Int) -> Int {
        fixedHeaderSize + key.utf8.count + payloadBytes
    }

    func write(key: String, object: StoredObject) throws {
        var header = ByteBuffer()
        header.writeBytes(Self.magic)
        header.writeInteger(Self.version, endianness: .little)
        let m = object.metadata
        for v in [m.fmt, m.dtype, m.shape.0, m.shape.1, m.shape.2, m.shape.3] { header.writeLE(v) }
        header.writeInteger(UInt32(key.utf8.count), endianness: .little)
        header.writeInteger(UInt64(object.payload.readableBytes), endianness: .little)
        header.writeString(key)

        let target = path(for: key)
        let temp = directory + "/" + Self.tempPrefix + UUID().uuidString
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DiskError.io("open", path: temp) }
        var ok = writeAll(fd, header) && writeAll(fd, object.payload)
        ok = (close(fd) == 0) && ok
        guard ok, rename(temp, target) == 0 else {
            unlink(temp)
            throw DiskError.io("write", path: target)
        }
    }

    func read(key: String) throws -> StoredObject {
        let path = path(for: key)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DiskError.io("open", path: path) }
        defer { close(fd) }
        let (storedKey, metadata, payloadLength, headerSize) = try readHeader(fd: fd, path: path)
        guard storedKey == key else { throw DiskError.corrupt("holds key \(storedKey)", path: path) }
        var payload = ByteBufferAllocator().buffer(capacity: payloadLength)
        let got = payload.writeWithUnsafeMutableBytes(minimumWritableBytes: payloadLength) { raw in
            preadAll(fd, raw.baseAddress!, payloadLength, offset: headerSize)
        }
        guard got == payloadLength else { throw DiskError.corrupt("short payload", path: path) }
        return StoredObject(metadata: metadata, payload: payload)
    }

    func remove(key: String) {
        unlink(path(for: key))
    }

    /// Lists valid entries oldest first (by modification time) and deletes leftovers of interrupted writes and
    /// files that fail validation.
    func scan(onInvalid: (String, any Error) -> Void) -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var entries: [Entry] = []
        for name in names {
            let path = directory + "/" + name
            if name.hasPrefix(Self.tempPrefix) {
                unlink(path)
                continue
            }
            guard name.hasSuffix(".kv") else { continue }
            do {
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw DiskError.io("open", path: path) }
                defer { close(fd) }
                let (key, _, payloadLength, headerSize) = try readHeader(fd: fd, path: path)
                guard self.path(for: key) == path else { throw DiskError.corrupt("name does not match key", path: path) }
                let attributes = try FileManager.default.attributesOfItem(atPath: path)
                let modified = attributes[.modificationDate] as? Date ?? Date.distantPast
                entries.append(Entry(key: key, fileSize: headerSize + payloadLength, modified: modified))
            } catch {
                onInvalid(path, error)
                unlink(path)
            }
        }
        return entries.sorted { $0.modified < $1.modified }
    }

    private func readHeader(fd: Int32, path: String) throws -> (String, ObjectMetadata, Int, Int) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw DiskError.io("stat", path: path) }
        let fileSize = Int(st.st_size)
        var fixed = [UInt8](repeating: 0, count: Self.fixedHeaderSize)
        guard fileSize >= Self.fixedHeaderSize,
              fixed.withUnsafeMutableBytes({ preadAll(fd, $0.baseAddress!, Self.fixedHeaderSize, offset: 0) }) == Self.fixedHeaderSize
        else { throw DiskError.corrupt("shorter than its header", path: path) }
        var buffer = ByteBuffer(bytes: fixed)
        guard buffer.readBytes(length: 4) == Self.magic,
              buffer.readInteger(endianness: .little, as: UInt32.self) == Self.version
        else { throw DiskError.corrupt("bad magic or version", path: path) }
        let metadata = ObjectMetadata(
            fmt: buffer.readLE()!, dtype: buffer.readLE()!,
            shape: (buffer.readLE()!, buffer.readLE()!, buffer.readLE()!, buffer.readLE()!))
        let keyLength = Int(buffer.readInteger(endianness: .little, as: UInt32.self)!)
        let payloadLength = buffer.readInteger(endianness: .little, as: UInt64.self)!
        guard keyLength <= WireConstants.keyFieldSize, payloadLength <= UInt64(WireConstants.maxFrameLength),
              fileSize == Self.fixedHeaderSize + keyLength + Int(payloadLength)
        else { throw DiskError.corrupt("lengths do not match file size \(fileSize)", path: path) }
        var keyBytes = [UInt8](repeating: 0, count: keyLength)
        guard keyBytes.withUnsafeMutableBytes({ preadAll(fd, $0.baseAddress!, keyLength, offset: Self.fixedHeaderSize) }) == keyLength,
              let key = String(validating: keyBytes, as: UTF8.self)
        else { throw DiskError.corrupt("bad key", path: path) }
        return (key, metadata, Int(payloadLength), Self.fixedHeaderSize + keyLength)
    }
}

private func writeAll(_ fd: Int32, _ buffer: ByteBuffer) -> Bool {
    buffer.withUnsafeReadableBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }
}

private func preadAll(_ fd: Int32, _ base: UnsafeMutableRawPointer, _ count: Int, offset: Int) -> Int {
    var done = 0
    while done < count {
        let n = pread(fd, base + done, count - done, off_t(offset + done))
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        done += n
    }
    return done
}

extension DiskTier {
    /// Where `key` lives under `directory` (for tests that tamper with files).
    static func pathForTesting(directory: String, key: String) -> String {
        (try? DiskTier(directory: directory))?.path(for: key) ?? ""
    }
}
