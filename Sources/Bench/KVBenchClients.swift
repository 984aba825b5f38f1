import KVStore

/// One connection to a store under test, doing acknowledged writes and full reads.
protocol KVBenchConnection: AnyObject {
    /// Stores `payload` under `key` and returns once the server has acknowledged it.
    func put(key: String, payload: UnsafeRawBufferPointer) throws
    /// Reads the value of `key` into `buffer`; returns its length.
    func get(key: String, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// The lm:// protocol over a blocking socket. PUT has no reply, so each PUT is followed by an EXIST on the same
/// connection: the acknowledgement the prefill node waits for, and the fair counterpart of redis's `+OK`.
final class LMBenchConnection: KVBenchConnection {
    private let socket: BlockingSocket
    private var header = [UInt8](repeating: 0, count: 182)
    private var reply = [UInt8](repeating: 0, count: 32)

    init(host: String, port: Int) throws {
        socket = try BlockingSocket(host: host, port: port)
    }

    func put(key: String, payload: UnsafeRawBufferPointer) throws {
        fillHeader(command: 1, length: payload.count, key: key)
        try header.withUnsafeBytes { try socket.send($0, payload) }
        fillHeader(command: 3, length: 0, key: key)
        try header.withUnsafeBytes { try socket.send($0) }
        try reply.withUnsafeMutableBytes { try socket.receive(into: $0) }
        guard readInt(0) == 200 else { throw BenchError.protocolError("EXIST after PUT of \(key) answered \(readInt(0))") }
    }

    func get(key: String, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        fillHeader(command: 2, length: 0, key: key)
        try header.withUnsafeBytes { try socket.send($0) }
        try reply.withUnsafeMutableBytes { try socket.receive(into: $0) }
        guard readInt(0) == 200 else { throw BenchError.protocolError("GET \(key) missed") }
        let length = Int(readInt(4))
        guard length <= buffer.count else { throw BenchError.protocolError("GET \(key) returned \(length) bytes") }
        try socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]))
        return length
    }

    private func fillHeader(command: Int32, length: Int, key: String) {
        let ints: [Int32] = [command, Int32(length), 1, 2, 0, 0, 0, 0]
        header.withUnsafeMutableBytes { raw in
            for (i, v) in ints.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: i * 4, as: Int32.self) }
            let keyBytes = Array(key.utf8)
            for i in 0..<150 { raw[32 + i] = i < keyBytes.count ? keyBytes[i] : 0x20 }
        }
    }

    private func readInt(_ offset: Int) -> Int32 {
        reply.withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: Int32.self)) }
    }
}

/// RESP2 `SET`/`GET` over a blocking socket, written to the same discipline as the lm:// connection.
final class RedisBenchConnection: KVBenchConnection {
    private let socket: BlockingSocket

    init(host: String, port: Int) throws {
        socket = try BlockingSocket(host: host, port: port)
    }

    func put(key: String, payload: UnsafeRawBufferPointer) throws {
        let head = Array("*3\r\n$3\r\nSET\r\n$\(key.utf8.count)\r\n\(key)\r\n$\(payload.count)\r\n".utf8)
        let tail: [UInt8] = [13, 10]
        try head.withUnsafeBytes { h in try tail.withUnsafeBytes { t in try socket.send(h, payload, t) } }
        let line = try socket.receiveLine()
        guard line == Array("+OK".utf8) else { throw BenchError.protocolError("SET answered \(String(decoding: line, as: UTF8.self))") }
    }

    func get(key: String, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let request = Array("*2\r\n$3\r\nGET\r\n$\(key.utf8.count)\r\n\(key)\r\n".utf8)
        try request.withUnsafeBytes { try socket.send($0) }
        let line = try socket.receiveLine()
        guard line.first == UInt8(ascii: "$"), let length = Int(String(decoding: line.dropFirst(), as: UTF8.self)), length >= 0,
              length <= buffer.count
        else { throw BenchError.protocolError("GET \(key) answered \(String(decoding: line, as: UTF8.self))") }
        try socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]))
        var crlf: [UInt8] = [0, 0]
        try crlf.withUnsafeMutableBytes { try socket.receive(into: $0) }
        return length
    }
}

public enum BenchError: Error, CustomStringConvertible {
    case protocolError(String)
    case setup(String)

    public var description: String {
        switch self {
        case .protocolError(let s): return "protocol error: \(s)"
        case .setup(let s): return s
        }
    }
}
