import AsyncHTTPClient
import Hummingbird
import Logging
import NIOCore
import OpenAIAPI

/// Copies a decode node's body to the client as it arrives. An upstream failure after the first byte ends an event
/// stream with an SSE error event (never a silent cut); a client that goes away stops the copy, which drops the
/// upstream body and so cancels the request on the decode node.
struct StreamRelay: Sendable {
    let upstream: HTTPClientResponse.Body
    let lease: BackendLease
    let pool: BackendPool
    let metrics: ProxyMetrics
    let sent: ContinuousClock.Instant
    let isEventStream: Bool
    let requestId: String
    let logger: Logger

    func run(into writer: inout any ResponseBodyWriter) async throws {
        var succeeded = false
        defer { pool.finish(lease, succeeded: succeeded) }
        var iterator = upstream.makeAsyncIterator()
        var first = true
        while true {
            let chunk: ByteBuffer?
            do {
                chunk = try await iterator.next()
            } catch {
                logger.warning("decode \(lease.url) failed mid-response for \(requestId): \(error)")
                metrics.error("decode_interrupted")
                if isEventStream {
                    let event = OpenAIError(status: 502, message: "decode node failed mid-stream: \(error)")
                    try await writer.write(ByteBuffer(bytes: Array("data: ".utf8) + event.jsonBytes + Array("\n\n".utf8)))
                    try await writer.finish(nil)
                    return
                }
                throw error  // a non-stream body cannot be repaired: the connection is closed, not completed
            }
            guard let chunk else { break }
            if first {
                metrics.decodeTTFT.record(duration: ContinuousClock.now - sent)
                first = false
            }
            do {
                try await writer.write(chunk)
            } catch {
                metrics.clientDisconnects.increment()
                logger.info("client went away during \(requestId); cancelling decode")
                succeeded = true  // the node did nothing wrong
                throw error
            }
        }
        succeeded = true
        try await writer.finish(nil)
    }
}
