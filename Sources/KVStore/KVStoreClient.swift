import NIOCore
import NIOPosix
import Synchronization

/// What a caller of `KVStoreClient` can see go wrong; every failure is one of these, never a hang.
public enum KVStoreClientError: Error, Equatable, CustomStringConvertible {
    case connectFailed(String)
    case timeout
    case connectionClosed
    case protocolViolation(String)
    case invalidKey(KeyError)
    case serverRefused

    public var description: String {
        switch self {
        case .connectFailed(let why): return "cannot connect to the KV store: \(why)"
        case .timeout: return "KV store request timed out"
        case .connectionClosed: return "KV store connection closed"
        case .protocolViolation(let why): return "KV store protocol violation: \(why)"
        case .invalidKey(let e): return "invalid KV store key: \(e)"
        case .serverRefused: return "KV store answered with a failure code"
        }
    }
}

public struct KVStoreClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var connectTimeout: Duration = .seconds(2)
    public var requestTimeout: Duration = .seconds(10)
    /// After a failed connect, calls fail fast for this long (doubling up to `maxReconnectBackoff`) instead of
    /// stalling every request on a dead store.
    public var reconnectBackoff: Duration = .milliseconds(100)
    public var maxReconnectBackoff: Duration = .seconds(2)
    public var maxObjectSize: Int = WireConstants.maxFrameLength

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

/// An `lm://` client: one persistent connection, requests pipelined and answered in order, reconnecting by itself
/// on the first call after the connection was lost.
public final class KVStoreClient: Sendable {
    private enum Connection {
        case idle(retryAfter: ContinuousClock.Instant, backoff: Duration)
        case connecting(EventLoopFuture<any Channel>)
        case ready(any Channel)
        case shutDown
    }

    public let configuration: KVStoreClientConfiguration
    private let group: MultiThreadedEventLoopGroup
    private let connection: Mutex<Connection>

    public init(_ configuration: KVStoreClientConfiguration, group: MultiThreadedEventLoopGroup = .singleton) {
        self.configuration = configuration
        self.group = group
        connection = Mutex(.idle(retryAfter: .now, backoff: .zero))
    }

    public convenience init(host: String, port: Int) {
        self.init(KVStoreClientConfiguration(host: host, port: port))
    }

    /// Stores `object`; returns once the bytes are handed to the socket (PUT has no reply: use `exists` on the same
    /// client afterwards as a barrier when the store must hold it).
    public func put(_ key: String, _ object: StoredObject) async throws(KVStoreClientError) {
        let channel = try await currentChannel()
        try await wait(channel.writeAndFlush(ClientRequest(command: .put, key: key, object: object, reply: nil)))
    }

    /// The object under `key`, or nil on a miss.
    public func get(_ key: String) async throws(KVStoreClientError) -> StoredObject? {
        let reply = try await roundTrip(.get, key)
        guard reply.code == ReplyCode.success else { return nil }
        return StoredObject(metadata: reply.metadata, payload: reply.payload ?? ByteBuffer())
    }

    public func exists(_ key: String) async throws(KVStoreClientError) -> Bool {
        try await roundTrip(.exist, key).code == ReplyCode.success
    }

    public func health() async throws(KVStoreClientError) -> Bool {
        try await roundTrip(.health, "health").code == ReplyCode.success
    }

    /// Closes the connection; later calls fail with `connectionClosed`.
    public func shutdown() async {
        let old = connection.withLock { c -> Connection in
            defer { c = .shutDown }
            return c
        }
        if case .ready(let channel) = old { try? await channel.close() }
    }

    private func roundTrip(_ command: StoreCommand, _ key: String) async throws(KVStoreClientError) -> StoreReply {
        let channel = try await currentChannel()
        let promise = channel.eventLoop.makePromise(of: StoreReply.self)
        let request = ClientRequest(command: command, key: key, object: nil, reply: promise)
        // Checked and written on the channel's event loop: a channel that closed after `currentChannel` returned it
        // has no pipeline left, and a write there would never reach the handler that answers, times out or fails
        // the reply (the request would wait forever).
        channel.eventLoop.execute {
            guard channel.isActive else { return promise.fail(KVStoreClientError.connectionClosed) }
            channel.writeAndFlush(request, promise: nil)
        }
        return try await wait(promise.futureResult)
    }

    private func wait<T: Sendable>(_ future: EventLoopFuture<T>) async throws(KVStoreClientError) -> T {
        do {
            return try await future.get()
        } catch let error as KVStoreClientError {
            throw error
        } catch is ChannelError {
            throw .connectionClosed
        } catch {
            throw .protocolViolation("\(error)")
        }
    }

    private func currentChannel() async throws(KVStoreClientError) -> any Channel {
        let future: EventLoopFuture<any Channel> = try connection.withLock { (c) throws(KVStoreClientError) in
            switch c {
            case .ready(let channel) where channel.isActive:
                return channel.eventLoop.makeSucceededFuture(channel)
            case .connecting(let future):
                return future
            case .shutDown:
                throw .connectionClosed
            case .idle(let retryAfter, _) where ContinuousClock.now < retryAfter:
                throw .connectFailed("\(configuration.host):\(configuration.port) unreachable; retrying shortly")
            case .ready, .idle:
                let previousBackoff: Duration = if case .idle(_, let b) = c { b } else { .zero }
                let future = connect(previousBackoff: previousBackoff)
                c = .connecting(future)
                return future
            }
        }
        do {
            return try await future.get()
        } catch {
            throw .connectFailed("\(configuration.host):\(configuration.port): \(error)")
        }
    }

    private func connect(previousBackoff: Duration) -> EventLoopFuture<any Channel> {
        let timeout = TimeAmount(configuration.requestTimeout)
        let maxObjectSize = configuration.maxObjectSize
        let future = ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(ReplyDecoder(maxObjectSize: maxObjectSize)),
                        ClientRequestHandler(requestTimeout: timeout))
                }
            }
            .connect(host: configuration.host, port: configuration.port)
        future.whenComplete { [self] result in
            connection.withLock { c in
                guard case .connecting = c else { return }
                switch result {
                case .success(let channel):
                    c = .ready(channel)
                case .failure:
                    let backoff = min(max(previousBackoff * 2, configuration.reconnectBackoff), configuration.maxReconnectBackoff)
                    c = .idle(retryAfter: .now + backoff, backoff: backoff)
                }
            }
        }
        future.whenSuccess { [self] channel in
            channel.closeFuture.whenComplete { _ in
                self.connection.withLock { c in
                    if case .ready(let current) = c, current === channel { c = .idle(retryAfter: .now, backoff: .zero) }
                }
            }
        }
        return future
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
