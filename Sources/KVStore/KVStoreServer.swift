import Logging
import NIOCore
import NIOPosix

/// How to run a store.
public struct KVStoreConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8000
    public var wireProtocol: WireProtocol = .v1
    public var limits = StoreLimits(memoryCapacity: 20 << 30, diskCapacity: 100 << 30)
    public var maxObjectSize: Int = 1 << 30
    public var dataDirectory: String?

    public init() {}
}

/// The `lm://` TCP server: one task per connection, requests answered strictly in order.
public final class KVStoreServer: Sendable {
    public let configuration: KVStoreConfiguration
    public let store: TieredStore
    private let metrics: KVStoreMetrics
    private let logger: Logger
    private let serverChannel: NIOAsyncChannel<NIOAsyncChannel<StoreRequest, ByteBuffer>, Never>

    /// The bound address (port 0 in the configuration picks a free one).
    public var localPort: Int { serverChannel.channel.localAddress?.port ?? configuration.port }

    /// Opens the storage (recovering the disk tier) and binds the listening socket.
    public static func bind(
        _ configuration: KVStoreConfiguration, metrics: KVStoreMetrics = KVStoreMetrics(),
        logger: Logger = Logger(label: "swiftwise.kvstore"),
        group: MultiThreadedEventLoopGroup = .singleton
    ) async throws -> KVStoreServer {
        let store = try TieredStore(limits: configuration.limits, dataDirectory: configuration.dataDirectory,
                                    metrics: metrics, logger: logger)
        let proto = configuration.wireProtocol
        let maxObjectSize = configuration.maxObjectSize
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .bind(host: configuration.host, port: configuration.port) { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(RequestDecoder(protocol: proto, maxObjectSize: maxObjectSize)))
                    return try NIOAsyncChannel<StoreRequest, ByteBuffer>(wrappingChannelSynchronously: child)
                }
            }
        return KVStoreServer(configuration: configuration, store: store, metrics: metrics, logger: logger,
                             serverChannel: channel)
    }

    private init(configuration: KVStoreConfiguration, store: TieredStore, metrics: KVStoreMetrics, logger: Logger,
                 serverChannel: NIOAsyncChannel<NIOAsyncChannel<StoreRequest, ByteBuffer>, Never>) {
        self.configuration = configuration
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.serverChannel = serverChannel
    }

    /// Serves until the surrounding task is cancelled; then closes the listener and every connection and, with a disk
    /// tier, persists what is in memory so a restart serves it.
    public func run() async throws {
        do {
            try await acceptConnections()
        } catch {
            await store.persistMemory()
            throw error
        }
        await store.persistMemory()
    }

    private func acceptConnections() async throws {
        try await withTaskCancellationHandler {
            try await serverChannel.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in inbound {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onCancel: {
            serverChannel.channel.close(promise: nil)
        }
    }

    private func serve(_ connection: NIOAsyncChannel<StoreRequest, ByteBuffer>) async {
        let peer = connection.channel.remoteAddress?.description ?? "?"
        metrics.connections.increment()
        metrics.openConnections.increment()
        defer { metrics.openConnections.decrement() }
        do {
            try await connection.executeThenClose { inbound, outbound in
                try await withTaskCancellationHandler {
                    for try await request in inbound {
                        try await handle(request, outbound)
                    }
                } onCancel: {
                    connection.channel.close(promise: nil)
                }
            }
        } catch let error as FrameError {
            metrics.rejectedFrames.increment()
            logger.warning("closing connection from \(peer): \(error)")
        } catch {
            logger.debug("connection from \(peer) ended: \(error)")
        }
    }

    private func handle(_ request: StoreRequest, _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        let start = ContinuousClock.now
        let proto = configuration.wireProtocol
        var header = ByteBuffer()
        header.reserveCapacity(proto.replyHeaderSize)
        switch request {
        case .put(let key, let object):
            metrics.bytesIn.increment(by: object.payload.readableBytes)
            store.put(key: key, object: object)  // PUT has no reply
            metrics.recordLatency(.put, since: start)
        case .get(let key):
            if let object = await store.get(key: key) {
                metrics.hits.increment()
                metrics.bytesOut.increment(by: object.payload.readableBytes)
                header.writeReplyHeader(proto, code: ReplyCode.success, length: object.payload.readableBytes,
                                        metadata: object.metadata)
                // Header and payload leave in one gathered write; the payload is never copied.
                try await outbound.write(contentsOf: [header, object.payload])
            } else {
                metrics.misses.increment()
                header.writeReplyHeader(proto, code: ReplyCode.failure, length: 0, metadata: .empty)
                try await outbound.write(header)
            }
            metrics.recordLatency(.get, since: start)
        case .exist(let key):
            let found = store.contains(key: key)
            header.writeReplyHeader(proto, code: found ? ReplyCode.success : ReplyCode.failure, length: 0, metadata: .empty)
            try await outbound.write(header)
            metrics.recordLatency(.exist, since: start)
        case .health:
            header.writeReplyHeader(proto, code: ReplyCode.success, length: 0, metadata: .empty)
            try await outbound.write(header)
            metrics.recordLatency(.health, since: start)
        case .list:
            var body = ByteBuffer()
            body.writeString(store.keys().joined(separator: "\n"))
            header.writeReplyHeader(proto, code: ReplyCode.success, length: body.readableBytes, metadata: .empty)
            try await outbound.write(contentsOf: [header, body])
            metrics.recordLatency(.list, since: start)
        }
    }
}
