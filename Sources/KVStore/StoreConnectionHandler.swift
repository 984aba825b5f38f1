import Logging
import NIOCore

/// Serves one connection on its event loop. Requests are handled in arrival order without leaving the loop (no
/// thread hop per request); only a disk-tier read goes to a thread pool, and while it runs later requests wait in a
/// queue, so replies stay in request order. Replies are flushed once per read burst, so pipelined requests share
/// a syscall; header and payload are written as two buffers of one gathered write.
final class StoreConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = StoreRequest
    typealias OutboundOut = ByteBuffer

    private let store: TieredStore
    private let metrics: KVStoreMetrics
    private let logger: Logger
    private let proto: WireProtocol
    private var queue = CircularBuffer<StoreRequest>()
    private var waitingOnDisk = false

    init(store: TieredStore, metrics: KVStoreMetrics, logger: Logger, protocol proto: WireProtocol) {
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.proto = proto
    }

    func channelActive(context: ChannelHandlerContext) {
        metrics.connections.increment()
        metrics.openConnections.increment()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        metrics.openConnections.decrement()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        queue.append(unwrapInboundIn(data))
        drain(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        // A client that pipelines without reading replies must not grow our outbound buffer without bound.
        if !context.channel.isWritable { context.channel.setOption(.autoRead, value: false).whenComplete { _ in } }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { context.channel.setOption(.autoRead, value: true).whenComplete { _ in } }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is FrameError {
            metrics.rejectedFrames.increment()
            logger.warning("closing connection from \(context.remoteAddress?.description ?? "?"): \(error)")
        } else {
            logger.debug("connection error: \(error)")
        }
        context.close(promise: nil)
    }

    private func drain(context: ChannelHandlerContext) {
        while !waitingOnDisk, let request = queue.popFirst() {
            handle(request, context: context)
        }
    }

    private func handle(_ request: StoreRequest, context: ChannelHandlerContext) {
        let start = ContinuousClock.now
        switch request {
        case .put(let key, let object):
            metrics.bytesIn.increment(by: object.payload.readableBytes)
            store.put(key: key, object: object)  // PUT has no reply
            metrics.recordLatency(.put, since: start)
        case .get(let key):
            switch store.lookup(key: key) {
            case .found(let object):
                replyToGet(object, context: context)
            case .miss:
                replyToGet(nil, context: context)
            case .onDisk:
                waitingOnDisk = true
                store.readFromDisk(key: key, on: context.eventLoop).assumeIsolated().whenComplete { result in
                    self.waitingOnDisk = false
                    self.replyToGet(try? result.get(), context: context)
                    self.drain(context: context)
                    context.flush()
                }
            }
            metrics.recordLatency(.get, since: start)
        case .exist(let key):
            writeHeader(code: store.contains(key: key) ? ReplyCode.success : ReplyCode.failure, context: context)
            metrics.recordLatency(.exist, since: start)
        case .health:
            writeHeader(code: ReplyCode.success, context: context)
            metrics.recordLatency(.health, since: start)
        case .list:
            var body = context.channel.allocator.buffer(capacity: 256)
            body.writeString(store.keys().joined(separator: "\n"))
            var header = context.channel.allocator.buffer(capacity: proto.replyHeaderSize)
            header.writeReplyHeader(proto, code: ReplyCode.success, length: body.readableBytes, metadata: .empty)
            context.write(wrapOutboundOut(header), promise: nil)
            context.write(wrapOutboundOut(body), promise: nil)
            metrics.recordLatency(.list, since: start)
        }
    }

    private func replyToGet(_ object: StoredObject?, context: ChannelHandlerContext) {
        guard let object else {
            metrics.misses.increment()
            writeHeader(code: ReplyCode.failure, context: context)
            return
        }
        metrics.hits.increment()
        metrics.bytesOut.increment(by: object.payload.readableBytes)
        var header = context.channel.allocator.buffer(capacity: proto.replyHeaderSize)
        header.writeReplyHeader(proto, code: ReplyCode.success, length: object.payload.readableBytes, metadata: object.metadata)
        context.write(wrapOutboundOut(header), promise: nil)
        if object.payload.readableBytes > 0 {
            context.write(wrapOutboundOut(object.payload), promise: nil)  // never copied: shared storage
        }
    }

    private func writeHeader(code: Int32, context: ChannelHandlerContext) {
        var header = context.channel.allocator.buffer(capacity: proto.replyHeaderSize)
        header.writeReplyHeader(proto, code: code, length: 0, metadata: .empty)
        context.write(wrapOutboundOut(header), promise: nil)
    }
}
