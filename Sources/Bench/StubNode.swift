import Hummingbird
import Logging
import NIOCore

/// A minimal OpenAI-shaped upstream for proxy benchmarks: answers completions instantly, as a short SSE stream when
/// `"stream": true` is in the body, else a small JSON body. Cheap enough that the proxy under test is what is measured.
public enum StubNode {
    public static func makeApplication(host: String, port: Int, events: Int, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        let event = ByteBuffer(string: #"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"stub","choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":null}]}"# + "\n\n")
        let done = ByteBuffer(string: "data: [DONE]\n\n")
        let json = ByteBuffer(string: #"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"stub","choices":[{"index":0,"message":{"role":"assistant","content":"tok"},"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#)
        let streamMarker = Array(#""stream":true"#.utf8)
        for path in ["/v1/chat/completions", "/v1/completions"] {
            router.post(RouterPath(path)) { request, _ -> Response in
                var request = request
                let body = try await request.collectBody(upTo: 1 << 20)
                let streamed = body.readableBytesView.firstRange(of: streamMarker) != nil
                guard streamed else {
                    return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: json))
                }
                return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: .init { writer in
                    for _ in 0..<events { try await writer.write(event) }
                    try await writer.write(done)
                    try await writer.finish(nil)
                })
            }
        }
        router.get("/health") { _, _ in Response(status: .ok) }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port)), logger: logger)
    }
}
