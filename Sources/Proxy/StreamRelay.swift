import AsyncHTTPClient
import Hummingbird
import Logging
import NIOCore
import OpenAIAPI

/// Copies a decode node's body to the client as it arrives, parts that arrive together in one write (RelayBuffer).
/// An upstream failure after the first byte ends an event stream with an SSE error event (never a silent cut); a
/// client that goes away stops the copy, which drops the upstream body and so cancels the request on the decode node.
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
        let buffer = RelayBuffer()
        let upstream = self.upstream
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Leaving early (the client went away) cancels the reader, which drops the upstream body and so cancels
            // the request on the decode node.
            defer { group.cancelAll() }
            group.addTask { await buffer.fill(from: upstream) }
            var first = true
            while true {
                let (bytes, end) = await buffer.take()
                if let bytes {
                    if first {
                        metrics.decodeTTFT.record(duration: ContinuousClock.now - sent)
                        first = false
                    }
                    do {
                        try await writer.write(bytes)
                    } catch {
                        metrics.clientDisconnects.increment()
                        logger.info("client went away during \(requestId); cancelling decode")
                        succeeded = true  // the node did nothing wrong
                        throw error
                    }
                }
                switch end {
                case nil:
                    continue
                case .finished:
                    succeeded = true
                    try await writer.finish(nil)
                    return
                case .failed(let error):
                    logger.warning("decode \(lease.url) failed mid-response for \(requestId): \(error)")
                    metrics.error("decode_interrupted")
                    guard isEventStream else { throw error }  // a non-stream body cannot be repaired: the connection is closed, not completed
                    let event = OpenAIError(status: 502, message: "decode node failed mid-stream: \(error)")
                    try await writer.write(ByteBuffer(bytes: Array("data: ".utf8) + event.jsonBytes + Array("\n\n".utf8)))
                    try await writer.finish(nil)
                    return
                }
            }
        }
    }
}
