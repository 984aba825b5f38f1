import NIOCore
import NIOPosix

/// A client that sends exact bytes and reads exact bytes, for wire-level tests. Non-blocking: the server under test
/// shares this process's cooperative threads.
struct RawConnection {
    enum Failure: Error { case closedEarly(got: Int, wanted: Int), timedOut }

    /// Connects, runs `body`, closes.
    static func with<T: Sendable>(
        port: Int, _ body: (inout RawConnection) async throws -> T
    ) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { ch in
                ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var connection = RawConnection(iterator: inbound.makeAsyncIterator(), outbound: outbound)
            return try await body(&connection)
        }
    }

    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var pending = ByteBuffer()

    private init(iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.iterator = iterator
        self.outbound = outbound
    }

    func send(_ bytes: [UInt8]) async throws {
        try await outbound.write(ByteBuffer(bytes: bytes))
    }

    /// Reads exactly `count` bytes, failing if the peer closes first.
    mutating func receive(_ count: Int) async throws -> [UInt8] {
        while pending.readableBytes < count {
            guard var next = try await iterator.next() else {
                throw Failure.closedEarly(got: pending.readableBytes, wanted: count)
            }
            pending.writeBuffer(&next)
        }
        return pending.readBytes(length: count)!
    }

    /// Reads until the peer closes; returns whatever arrived before the close.
    mutating func receiveUntilClosed() async throws -> [UInt8] {
        do {
            while var next = try await iterator.next() { pending.writeBuffer(&next) }
        } catch {
            // A reset counts as closed.
        }
        return pending.readBytes(length: pending.readableBytes)!
    }
}

/// Frames built by hand, independently of the production encoder.
enum Frame {
    static func le(_ values: [Int32]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    }

    static func key(_ key: String) -> [UInt8] {
        let bytes = Array(key.utf8)
        return bytes + [UInt8](repeating: 0x20, count: 150 - bytes.count)
    }

    static func request(_ command: Int32, length: Int32 = 0, fmt: Int32 = 1, dtype: Int32 = 2,
                        shape: [Int32] = [0, 0, 0, 0], key: String) -> [UInt8] {
        le([command, length, fmt, dtype] + shape) + Frame.key(key)
    }

    static func put(_ key: String, _ payload: [UInt8], fmt: Int32 = 1, dtype: Int32 = 2, shape: [Int32] = [0, 0, 0, 0]) -> [UInt8] {
        request(1, length: Int32(payload.count), fmt: fmt, dtype: dtype, shape: shape, key: key) + payload
    }

    static func get(_ key: String) -> [UInt8] { request(2, key: key) }
    static func exist(_ key: String) -> [UInt8] { request(3, key: key) }
    static func health() -> [UInt8] { request(5, key: "") }

    static let missReply: [UInt8] = le([400, 0, 1, 2, 0, 0, 0, 0])
    static let okReply: [UInt8] = le([200, 0, 1, 2, 0, 0, 0, 0])
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}
