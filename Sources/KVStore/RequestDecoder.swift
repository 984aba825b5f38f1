import NIOCore

/// One decoded client request.
public enum StoreRequest: Sendable {
    case put(key: String, object: StoredObject)
    case get(key: String)
    case exist(key: String)
    case list
    case health
}

/// Why a connection's byte stream was rejected; the connection is closed, the server carries on.
public enum FrameError: Error, Equatable, CustomStringConvertible {
    case unknownCommand(Int32)
    case invalidLength(Int32)
    case objectTooLarge(length: Int, limit: Int)
    case unexpectedPayload(command: Int32, length: Int32)
    case badKey(KeyError)
    case truncated(missingBytes: Int)

    public var description: String {
        switch self {
        case .unknownCommand(let c): return "unknown command \(c)"
        case .invalidLength(let n): return "invalid length \(n)"
        case .objectTooLarge(let n, let limit): return "object of \(n) bytes exceeds --max-object-size \(limit)"
        case .unexpectedPayload(let c, let n): return "command \(c) must not carry a payload (length \(n))"
        case .badKey(let e): return "bad key: \(e)"
        case .truncated(let n): return "connection closed \(n) bytes before the end of a frame"
        }
    }
}

/// Splits the server's inbound byte stream into requests. A PUT payload is copied once, into a buffer of exactly its
/// declared size, so stored objects never pin a larger receive buffer and byte accounting stays exact.
/// A half-received PUT is dropped when the connection closes: it never reaches storage.
public struct RequestDecoder: ByteToMessageDecoder {
    public typealias InboundOut = StoreRequest

    private enum State {
        case header
        case payload(key: String, metadata: ObjectMetadata, buffer: ByteBuffer, remaining: Int)
    }

    private let proto: WireProtocol
    private let maxObjectSize: Int
    private var state = State.header

    public init(protocol proto: WireProtocol, maxObjectSize: Int) {
        self.proto = proto
        self.maxObjectSize = min(maxObjectSize, WireConstants.maxFrameLength)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch state {
        case .header:
            guard buffer.readableBytes >= proto.requestHeaderSize else { return .needMoreData }
            let request = try readHeader(&buffer)
            if let request {
                context.fireChannelRead(wrapInboundOut(request))
            }
            return .continue
        case .payload(let key, let metadata, var payload, let remaining):
            let n = min(remaining, buffer.readableBytes)
            guard n > 0 else { return .needMoreData }
            var slice = buffer.readSlice(length: n)!
            state = .header  // drop our reference while appending so `payload` stays uniquely owned (no CoW copy)
            payload.writeBuffer(&slice)
            if n == remaining {
                let object = StoredObject(metadata: metadata, payload: payload)
                context.fireChannelRead(wrapInboundOut(.put(key: key, object: object)))
            } else {
                state = .payload(key: key, metadata: metadata, buffer: payload, remaining: remaining - n)
            }
            return .continue
        }
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        switch state {
        case .header where buffer.readableBytes > 0:
            throw FrameError.truncated(missingBytes: proto.requestHeaderSize - buffer.readableBytes)
        case .payload(_, _, _, let remaining):
            state = .header
            throw FrameError.truncated(missingBytes: remaining)
        default:
            return .needMoreData
        }
    }

    /// Parses one header; returns the request, or nil when a PUT payload follows.
    private mutating func readHeader(_ buffer: inout ByteBuffer) throws -> StoreRequest? {
        let rawCommand = buffer.readLE()!
        let length = buffer.readLE()!
        var metadata = ObjectMetadata.empty
        if proto == .v1 {
            metadata = ObjectMetadata(
                fmt: buffer.readLE()!, dtype: buffer.readLE()!,
                shape: (buffer.readLE()!, buffer.readLE()!, buffer.readLE()!, buffer.readLE()!))
        }
        guard let command = StoreCommand(rawValue: rawCommand) else { throw FrameError.unknownCommand(rawCommand) }
        guard length >= 0 else { throw FrameError.invalidLength(length) }
        if command != .put && length != 0 { throw FrameError.unexpectedPayload(command: rawCommand, length: length) }
        let key: String
        do {
            key = try buffer.readKeyField()
        } catch .empty where command == .list || command == .health {
            key = ""
        } catch {
            throw FrameError.badKey(error)
        }
        switch command {
        case .put:
            guard Int(length) <= maxObjectSize else { throw FrameError.objectTooLarge(length: Int(length), limit: maxObjectSize) }
            let payload = ByteBufferAllocator().buffer(capacity: Int(length))
            if length == 0 {
                return .put(key: key, object: StoredObject(metadata: metadata, payload: payload))
            }
            state = .payload(key: key, metadata: metadata, buffer: payload, remaining: Int(length))
            return nil
        case .get: return .get(key: key)
        case .exist: return .exist(key: key)
        case .list: return .list
        case .health: return .health
        }
    }
}
