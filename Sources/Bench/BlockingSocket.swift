#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP connection for load generation: one per client thread, so both servers under test see the same
/// simple client and no event-loop scheduling sits between the measurement and the socket.
final class BlockingSocket {
    enum Failure: Error, CustomStringConvertible {
        case connect(String, Int32)
        case closed
        case io(Int32)

        var description: String {
            switch self {
            case .connect(let host, let e): return "connect to \(host) failed: \(String(cString: strerror(e)))"
            case .closed: return "peer closed the connection"
            case .io(let e): return "socket error: \(String(cString: strerror(e)))"
            }
        }
    }

    private let fd: Int32

    init(host: String, port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(host)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw Failure.connect("\(host):\(port)", e)
        }
    }

    deinit { close(fd) }

    /// Sends every byte of each buffer, in order (one gathered write where the kernel allows).
    func send(_ parts: UnsafeRawBufferPointer...) throws {
        for part in parts {
            var offset = 0
            while offset < part.count {
                let n = Glibc.send(fd, part.baseAddress! + offset, part.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw Failure.io(errno) }
                offset += n
            }
        }
    }

    /// Fills `buffer` exactly.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            let n = recv(fd, buffer.baseAddress! + offset, buffer.count - offset, 0)
            if n < 0 && errno == EINTR { continue }
            if n == 0 { throw Failure.closed }
            guard n > 0 else { throw Failure.io(errno) }
            offset += n
        }
    }

    /// Reads one byte at a time up to and including "\r\n" (RESP headers are short).
    func receiveLine() throws -> [UInt8] {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            try withUnsafeMutableBytes(of: &byte) { try receive(into: $0) }
            line.append(byte)
            if line.count >= 2 && line[line.count - 2] == 13 && byte == 10 { return Array(line.dropLast(2)) }
        }
    }
}
