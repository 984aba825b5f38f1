import NIOCore

/// One reply as a client sees it.
struct StoreReply: Sendable {
    var code: Int32
    var metadata: ObjectMetadata
    var payload: ByteBuffer?
}

/// A request on its way out, with the promise its reply completes (nil for PUT, which has no reply).
struct ClientRequest: Sendable {
    var command: StoreCommand
    var key: String
    var object: StoredObject?
    var reply: EventLoopPromise<StoreReply>?
}

/// Splits a v1 reply stream: a 32-byte header, then `length` payload bytes on a successful GET.
struct ReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = StoreReply
    let maxObjectSize: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let headerSize = WireProtocol.v1.replyHeaderSize
        guard buffer.readableBytes >= headerSize else { return .needMoreData }
        let start = buffer.readerIndex
        let length = buffer.getInteger(at: start + 4, endianness: .little, as: Int32.self)!
        guard length >= 0, Int(length) <= maxObjectSize else { throw FrameError.invalidLength(length) }
        guard buffer.readableBytes >= headerSize + Int(length) else { return .needMoreData }
        let code = buffer.readLE()!
        _ = buffer.readLE()
        let metadata = ObjectMetadata(
            fmt: buffer.readLE()!, dtype: buffer.readLE()!,
            shape: (buffer.readLE()!, buffer.readLE()!, buffer.readLE()!, buffer.readLE()!))
        let payload = length > 0 ? buffer.readSlice(length: Int(length)) : nil
        context.fireChannelRead(wrapInboundOut(StoreReply(code: code, metadata: metadata, payload: payload)))
        return .continue
    }
}

/// Encodes requests and matches replies to them in order; the connection is ordered, so replies are FIFO.
/// A request left unanswered past its timeout fails every pending request and closes the connection, because the
/// stream can no longer be re-synchronised.
final class ClientRequestHandler: ChannelDuplexHandler {
    typealias InboundIn = StoreReply
    typealias OutboundIn = ClientRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var promise: EventLoopPromise<StoreReply>
        var timer: Scheduled<Void>?
    }

    private let requestTimeout: TimeAmount
    private var pending = CircularBuffer<Pending>()

    init(requestTimeout: TimeAmount) {
        self.requestTimeout = requestTimeout
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        var header = context.channel.allocator.buffer(capacity: WireProtocol.v1.requestHeaderSize)
        let metadata = request.object?.metadata ?? .empty
        header.writeLE(request.command.rawValue)
        header.writeLE(Int32(request.object?.payload.readableBytes ?? 0))
        for v in [metadata.fmt, metadata.dtype, metadata.shape.0, metadata.shape.1, metadata.shape.2, metadata.shape.3] {
            header.writeLE(v)
        }
        do {
            try header.writeKeyField(request.key)
        } catch {
            let failure = KVStoreClientError.invalidKey(error)
            promise?.fail(failure)
            request.reply?.fail(failure)
            return
        }
        if let reply = request.reply {
            let loop = context.eventLoop.assumeIsolated()
            let timer = loop.scheduleTask(in: requestTimeout) { self.timedOut(context: context) }
            pending.append(Pending(promise: reply, timer: timer))
        }
        if let payload = request.object?.payload {
            context.write(wrapOutboundOut(header), promise: nil)
            context.write(wrapOutboundOut(payload), promise: promise)
        } else {
            context.write(wrapOutboundOut(header), promise: promise)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = unwrapInboundIn(data)
        guard let next = pending.popFirst() else {
            failAll(KVStoreClientError.protocolViolation("reply without a request"))
            context.close(promise: nil)
            return
        }
        next.timer?.cancel()
        next.promise.succeed(reply)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(KVStoreClientError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(KVStoreClientError.protocolViolation("\(error)"))
        context.close(promise: nil)
    }

    private func timedOut(context: ChannelHandlerContext) {
        failAll(KVStoreClientError.timeout)
        context.close(promise: nil)
    }

    private func failAll(_ error: KVStoreClientError) {
        while let p = pending.popFirst() {
            p.timer?.cancel()
            p.promise.fail(error)
        }
    }
}
