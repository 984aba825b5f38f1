import Logging
import NIOCore
import NIOPosix
import Synchronization

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

/// The `lm://` TCP server. Each connection is served on its event loop by a `StoreConnectionHandler`, requests
/// answered strictly in order; connections run concurrently across the loops.
public final class KVStoreServer: Sendable {
    public let configuration: KVStoreConfiguration
    public let store: TieredStore
    private let serverChannel: any Channel
    private let connections: OpenConnections

    /// The bound port (port 0 in the configuration picks a free one).
    public var localPort: Int { serverChannel.localAddress?.port ?? configuration.port }

    /// Opens the storage (recovering the disk tier) and binds the listening socket.
    public static func bind(
        _ configuration: KVStoreConfiguration, metrics: KVStoreMetrics = KVStoreMetrics(),
        logger: Logger = Logger(label: "swiftwise.kvstore"),
        group: MultiThreadedEventLoopGroup = .singleton
    ) async throws -> KVStoreServer {
        let store = try TieredStore(limits: configuration.limits, dataDirectory: configuration.dataDirectory,
                                    metrics: metrics, logger: logger)
        let connections = OpenConnections()
        let proto = configuration.wireProtocol
        let maxObjectSize = configuration.maxObjectSize
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // Large reads: a multi-MiB PUT arrives in few syscalls (the decoder copies each read into the object).
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 1 << 20))
            .childChannelInitializer { child in
                connections.add(child)
                return child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(RequestDecoder(protocol: proto, maxObjectSize: maxObjectSize)),
                        StoreConnectionHandler(store: store, metrics: metrics, logger: logger, protocol: proto))
                }
            }
            .bind(host: configuration.host, port: configuration.port).get()
        return KVStoreServer(configuration: configuration, store: store, serverChannel: channel, connections: connections)
    }

    private init(configuration: KVStoreConfiguration, store: TieredStore, serverChannel: any Channel,
                 connections: OpenConnections) {
        self.configuration = configuration
        self.store = store
        self.serverChannel = serverChannel
        self.connections = connections
    }

    /// Serves until the surrounding task is cancelled; then closes the listener and every connection and, with a disk
    /// tier, persists what is in memory so a restart serves it.
    public func run() async throws {
        await withTaskCancellationHandler {
            try? await serverChannel.closeFuture.get()
        } onCancel: {
            serverChannel.close(promise: nil)
        }
        // Every connection closed at once (each on its own event loop), not one after another.
        await withTaskGroup(of: Void.self) { group in
            for channel in connections.all() { group.addTask { try? await channel.close() } }
        }
        await store.persistMemory()
        if !Task.isCancelled { throw ServerError.listenerClosed }
    }

    public enum ServerError: Error { case listenerClosed }
}

/// The server's open connections, so that stopping the server also closes them.
final class OpenConnections: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in _ = self.channels.withLock { $0.removeValue(forKey: id) } }
    }

    func all() -> [any Channel] {
        channels.withLock { Array($0.values) }
    }
}
