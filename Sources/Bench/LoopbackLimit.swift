import Foundation
#if canImport(Glibc)
import Glibc
import ServiceKit
#endif

/// The physical ceilings a KV transfer on one machine is measured against: one-thread memcpy bandwidth and raw TCP
/// loopback throughput (one connection, 4 MiB writes, a reader thread), each the best of a few runs.
public enum LoopbackLimit {
    public static func memcpyGBps(bytes: Int = 256 << 20, repeats: Int = 3) -> Double {
        let a = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let b = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { a.deallocate(); b.deallocate() }
        memset(a, 1, bytes)
        memset(b, 2, bytes)
        var best = 0.0
        for _ in 0..<repeats {
            let start = ContinuousClock.now
            memcpy(b, a, bytes)
            best = max(best, Double(bytes) / (ContinuousClock.now - start).seconds / 1e9)
        }
        return best
    }

    public static func tcpGBps(bytes: Int = 1 << 30, repeats: Int = 3) throws -> Double {
        var best = 0.0
        for _ in 0..<repeats { best = max(best, try tcpOnce(bytes: bytes)) }
        return best
    }

    private static func tcpOnce(bytes: Int) throws -> Double {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        listen(listener, 1)
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let done = DispatchSemaphore(value: 0)
        let reader = Thread {
            let fd = accept(listener, nil, nil)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4 << 20, alignment: 64)
            var total = 0
            while total < bytes {
                let n = recv(fd, buffer, 4 << 20, 0)
                if n <= 0 { break }
                total += n
            }
            buffer.deallocate()
            close(fd)
            done.signal()
        }
        reader.start()
        let client = try BlockingSocket(host: "127.0.0.1", port: port)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 64)
        defer { chunk.deallocate() }
        memset(chunk.baseAddress!, 7, chunk.count)
        let start = ContinuousClock.now
        var sent = 0
        while sent < bytes {
            try client.send(UnsafeRawBufferPointer(chunk))
            sent += chunk.count
        }
        done.wait()
        return Double(sent) / (ContinuousClock.now - start).seconds / 1e9
    }
}
