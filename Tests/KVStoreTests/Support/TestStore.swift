import Foundation
import KVStore
import Logging
import NIOCore

/// A store running in this process on a free loopback port, stopped by `stop()`.
final class TestStore: Sendable {
    let server: KVStoreServer
    let task: Task<Void, any Error>
    var port: Int { server.localPort }
    var store: TieredStore { server.store }

    init(memory: Int = 64 << 20, disk: Int = 256 << 20, maxObjectSize: Int = 16 << 20, dataDirectory: String? = nil,
         protocol proto: WireProtocol = .v1, port: Int = 0) async throws {
        var config = KVStoreConfiguration()
        config.port = port
        config.wireProtocol = proto
        config.limits = StoreLimits(memoryCapacity: memory, diskCapacity: disk)
        config.maxObjectSize = maxObjectSize
        config.dataDirectory = dataDirectory
        var logger = Logger(label: "test.kvstore")
        logger.logLevel = .critical
        let server = try await KVStoreServer.bind(config, logger: logger)
        self.server = server
        task = Task { try await server.run() }
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "swiftwise-test-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Deterministic bytes for payloads (SplitMix64), so failures reproduce.
struct SeededBytes: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            let v = next()
            for b in 0..<min(8, count - i) { out[i + b] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(b))) }
            i += 8
        }
        return out
    }
}

func object(_ bytes: [UInt8], fmt: Int32 = 1, dtype: Int32 = 2) -> StoredObject {
    StoredObject(metadata: ObjectMetadata(fmt: fmt, dtype: dtype, shape: (2, 1, Int32(bytes.count), 1)),
                 payload: ByteBuffer(bytes: bytes))
}
