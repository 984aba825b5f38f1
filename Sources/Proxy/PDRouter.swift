import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import OpenAIAPI

/// The PD workflow for one completion request: a `max_tokens=1` copy to a prefill node (which stores the prompt's
/// KV cache before it answers), then the original to a decode node, whose answer is relayed as it arrives.
struct PDRouter: Sendable {
    let pool: BackendPool
    let client: HTTPClient
    let metrics: ProxyMetrics
    let configuration: ProxyConfiguration
    let logger: Logger

    private var forever: TimeAmount { .hours(24 * 365) }  // no total deadline; the client's read timeout is the idle limit

    /// json: the decoded body, nil when the proxy has no prefill node and no prefix routing (it goes straight to
    /// decode, and that is no prefill skipped).
    func complete(path: String, request: Request, body: ByteBuffer, json: JSONValue?, requestId: String) async -> Response {
        let upstreamHeaders = UpstreamHeaders.forRequest(request.headers, requestId: requestId)
        var prefixKey: [UInt64] = []
        if configuration.policy == .prefixAware, let json {
            prefixKey = PrefixBlocks.hashes(of: Self.promptText(json), blockCharacters: configuration.prefixBlockCharacters)
        }

        // 1. Prefill (none configured: none to skip): retried once on another node; a client error (4xx) goes back to
        // the client as is.
        if let json, pool.hasNodes(.prefill),
           let earlyResponse = await prefill(path: path, json: json, headers: upstreamHeaders, prefixKey: prefixKey,
                                             requestId: requestId) {
            return earlyResponse
        }
        // 2. Decode: the original bytes, relayed as they arrive.
        return await decode(path: path, body: body, headers: upstreamHeaders, prefixKey: prefixKey, requestId: requestId)
    }

    /// The prefill copy: `max_tokens` (and `max_completion_tokens` when present) 1, not streamed.
    static func prefillBody(_ json: JSONValue) -> JSONValue {
        var copy = json
        copy["max_tokens"] = .number(1)
        if copy["max_completion_tokens"] != nil { copy["max_completion_tokens"] = .number(1) }
        copy["stream"] = .bool(false)
        copy["stream_options"] = nil
        return copy
    }

    /// The prompt as text for prefix_aware routing: messages as `role:content` lines, or the prompt (token ids
    /// joined by commas), capped at 16 Ki characters.
    static func promptText(_ json: JSONValue, limit: Int = 16_384) -> String {
        var text = ""
        if let messages = json["messages"]?.arrayValue {
            for message in messages where text.count < limit {
                text += (message["role"]?.stringValue ?? "") + ":"
                if let content = message["content"]?.stringValue {
                    text += content
                } else if let parts = message["content"]?.arrayValue {
                    text += parts.compactMap { $0["text"]?.stringValue }.joined()
                }
                text += "\n"
            }
        } else if let prompt = json["prompt"] {
            switch prompt {
            case .string(let s): text = s
            case .array(let items): text = items.prefix(limit).map { $0.stringValue ?? "\($0)" }.joined(separator: ",")
            default: break
            }
        }
        return String(text.prefix(limit))
    }

    private func prefill(path: String, json: JSONValue, headers: HTTPHeaders, prefixKey: [UInt64],
                         requestId: String) async -> Response? {
        var body: ByteBuffer?  // encoded once a prefill node is there to take it
        var tried: Set<URL> = []
        let start = ContinuousClock.now
        for attempt in 0..<2 {
            guard let lease = pool.acquire(.prefill, prefix: prefixKey, excluding: tried) else { break }
            tried.insert(lease.url)
            let encoded = body ?? ByteBuffer(bytes: (try? JSONEncoder().encode(Self.prefillBody(json))) ?? Data())
            body = encoded
            if attempt > 0 { metrics.prefillRetries.increment() }
            let sent = ContinuousClock.now
            do {
                let response = try await client.execute(upstream(lease, path, headers, encoded), timeout: forever)
                let responseBody = try await response.body.collect(upTo: configuration.maxBodyBytes)
                metrics.backendLatency(lease, ContinuousClock.now - sent)
                let status = Int(response.status.code)
                if (200..<300).contains(status) {
                    pool.finish(lease, succeeded: true)
                    metrics.prefillTime.record(duration: ContinuousClock.now - start)
                    return nil
                }
                if (400..<500).contains(status) && status != 408 && status != 429 {
                    // The request itself is wrong; decode would refuse it the same way.
                    pool.finish(lease, succeeded: true)
                    return Response(status: .init(code: status),
                                    headers: UpstreamHeaders.forResponse(response.headers, requestId: requestId),
                                    body: .init(byteBuffer: responseBody))
                }
                pool.finish(lease, succeeded: false)
                logger.warning("prefill \(lease.url) answered \(status) for \(requestId)")
            } catch {
                pool.finish(lease, succeeded: false)
                logger.warning("prefill \(lease.url) failed for \(requestId): \(error)")
            }
        }
        // No prefill node could take it: decode recomputes the prompt. Slower, never wrong.
        metrics.prefillSkipped.increment()
        metrics.error("prefill_unavailable")
        return nil
    }

    private func decode(path: String, body: ByteBuffer, headers: HTTPHeaders, prefixKey: [UInt64],
                        requestId: String) async -> Response {
        var tried: Set<URL> = []
        for _ in 0..<2 {
            guard let lease = pool.acquire(.decode, prefix: prefixKey, excluding: tried) else { break }
            tried.insert(lease.url)
            let sent = ContinuousClock.now
            let response: HTTPClientResponse
            do {
                response = try await client.execute(upstream(lease, path, headers, body), timeout: forever)
            } catch {
                // Nothing reached the client yet, so another node may take it.
                pool.finish(lease, succeeded: false)
                logger.warning("decode \(lease.url) failed for \(requestId): \(error)")
                continue
            }
            metrics.backendLatency(lease, ContinuousClock.now - sent)
            let status = Int(response.status.code)
            let fields = UpstreamHeaders.forResponse(response.headers, requestId: requestId)
            let relay = StreamRelay(upstream: response.body, lease: lease, pool: pool, metrics: metrics,
                                    sent: sent, isEventStream: fields[.contentType]?.hasPrefix("text/event-stream") == true,
                                    requestId: requestId, logger: logger)
            if status >= 500 { metrics.error("decode_status_\(status)") }
            return Response(status: .init(code: status), headers: fields, body: ResponseBody { writer in
                try await relay.run(into: &writer)
            })
        }
        metrics.error("decode_unavailable")
        let error = OpenAIError(status: tried.isEmpty ? 503 : 502,
                                message: tried.isEmpty ? "no healthy decode node" : "decode node unreachable (tried \(tried.count))")
        return Self.errorResponse(error, requestId: requestId)
    }

    private func upstream(_ lease: BackendLease, _ path: String, _ headers: HTTPHeaders, _ body: ByteBuffer) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: lease.url.absoluteString + path)
        request.method = .POST
        request.headers = headers
        request.body = .bytes(body)
        return request
    }

    static func errorResponse(_ error: OpenAIError, requestId: String?) -> Response {
        var fields: HTTPFields = [.contentType: "application/json"]
        if let requestId { fields[UpstreamHeaders.requestIdName] = requestId }
        return Response(status: .init(code: error.status), headers: fields,
                        body: .init(byteBuffer: ByteBuffer(bytes: error.jsonBytes)))
    }
}
