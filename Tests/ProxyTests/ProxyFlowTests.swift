import AsyncHTTPClient
import Foundation
import NIOCore
import Proxy
import Testing

@Suite("proxy: the PD flow", .timeLimit(.minutes(1)))
struct ProxyFlowTests {
    @Test("prefill gets a max_tokens=1, non-streamed copy; decode gets the original bytes; both see one request id")
    func prefillCopyAndDecodeOriginal() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D")
        let proxy = try await TestProxy(prefill: [p], decode: [d])
        let original = #"{"model":"fake-model","messages":[{"role":"user","content":"San Francisco"}],"max_tokens":200,"max_completion_tokens":300,"stream":true,"stream_options":{"include_usage":true},"temperature":0.75}"#
        let result = try await post(proxy.url + "/v1/chat/completions", original,
                                    headers: [("Authorization", "Bearer user-key"), ("X-Request-Id", "req-42")])
        #expect(result.status == 200)
        #expect(result.header("content-type")?.hasPrefix("text/event-stream") == true)
        #expect(result.body.hasSuffix("data: [DONE]\n\n"))
        #expect(result.header("x-request-id") == "req-42")

        let prefill = try #require(p.received.first)
        let sent = try #require(prefill.json)
        #expect(sent["max_tokens"] as? Int == 1)
        #expect(sent["max_completion_tokens"] as? Int == 1)
        #expect(sent["stream"] as? Bool == false)
        #expect(sent["stream_options"] == nil)
        #expect(sent["temperature"] as? Double == 0.75)
        #expect((sent["messages"] as? [[String: String]])?.first?["content"] == "San Francisco")
        #expect(prefill.headers[.authorization] == "Bearer user-key")
        #expect(prefill.headers[.init("X-Request-Id")!] == "req-42")

        let decode = try #require(d.received.first)
        #expect(decode.body == Array(original.utf8))
        #expect(decode.headers[.init("X-Request-Id")!] == "req-42")
        #expect(decode.headers[.authorization] == "Bearer user-key")
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("completions without max_completion_tokens do not gain one; a request id is generated when absent")
    func completionsPrefillCopy() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D")
        let proxy = try await TestProxy(prefill: [p], decode: [d])
        let result = try await post(proxy.url + "/v1/completions", #"{"model":"m","prompt":"The capital of France is","max_tokens":16}"#)
        #expect(result.status == 200)
        #expect(jsonObject(result.body)?["object"] as? String == "text_completion")
        let sent = try #require(p.received.first?.json)
        #expect(sent["max_tokens"] as? Int == 1)
        #expect(sent["max_completion_tokens"] == nil)
        let id = try #require(result.header("x-request-id"))
        #expect(id.hasPrefix("swiftwise-"))
        #expect(p.received.first?.headers[.init("X-Request-Id")!] == id)
        #expect(d.received.first?.headers[.init("X-Request-Id")!] == id)
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("an event stream is relayed as it arrives, not buffered")
    func streamsWithoutBuffering() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D", .holdAfterFirstEvent)
        let proxy = try await TestProxy(prefill: [p], decode: [d])
        var request = HTTPClientRequest(url: proxy.url + "/v1/chat/completions")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: #"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#))
        let response = try await testClient.execute(request, timeout: .seconds(30))
        #expect(response.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
        var received = ""
        var iterator = response.body.makeAsyncIterator()
        // The fake holds the rest until released: if the proxy buffered, this would never see "lo".
        while !received.contains(#""content":"lo""#), let chunk = try await iterator.next() {
            received += String(buffer: chunk)
        }
        #expect(received.contains(#""role":"assistant""#))
        d.release()
        while let chunk = try await iterator.next() { received += String(buffer: chunk) }
        #expect(received.hasSuffix("data: [DONE]\n\n"))
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("hop-by-hop headers are not forwarded")
    func hopByHopStripped() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D")
        let proxy = try await TestProxy(prefill: [p], decode: [d])
        _ = try await post(proxy.url + "/v1/completions", #"{"prompt":"x"}"#,
                           headers: [("Keep-Alive", "timeout=5"), ("X-Hop", "secret"), ("Connection", "keep-alive, X-Hop"),
                                     ("X-Custom", "kept"), ("Proxy-Authorization", "Basic abc")])
        for node in [p, d] {
            let headers = try #require(node.received.first?.headers)
            #expect(headers[.init("X-Custom")!] == "kept")
            #expect(headers[.init("X-Hop")!] == nil)
            #expect(headers[.init("Keep-Alive")!] == nil)
            #expect(headers[.init("Proxy-Authorization")!] == nil)
        }
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("/v1/models comes from a decode node; /health lists backends; /metrics counts requests")
    func infoEndpoints() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D")
        let proxy = try await TestProxy(prefill: [p], decode: [d])
        let models = try await get(proxy.url + "/v1/models")
        #expect(models.status == 200)
        #expect(models.body.contains(#""owned_by":"D""#))
        _ = try await post(proxy.url + "/v1/chat/completions", chatBody)
        let health = try await get(proxy.url + "/health")
        #expect(health.status == 200)
        let backends = try #require(jsonObject(health.body)?["backends"] as? [[String: Any]])
        #expect(backends.count == 2)
        #expect(Set(backends.compactMap { $0["role"] as? String }) == ["prefill", "decode"])
        let metrics = try await get(proxy.url + "/metrics")
        #expect(metrics.body.contains(#"proxy_requests_total{endpoint="chat",status="200"} 1"#))
        #expect(metrics.body.contains("proxy_prefill_seconds_count 1"))
        #expect(metrics.body.contains("proxy_decode_ttft_seconds_count 1"))
        #expect(metrics.body.contains(#"proxy_backend_latency_seconds_count{role="decode""#))
        #expect(metrics.body.contains("proxy_in_flight 0"))
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("--api-key protects completions and admin; the key is forwarded upstream")
    func apiKey() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D")
        let proxy = try await TestProxy(prefill: [p], decode: [d]) { $0.apiKey = "sekret" }
        let denied = try await post(proxy.url + "/v1/chat/completions", chatBody)
        #expect(denied.status == 401)
        #expect((jsonObject(denied.body)?["error"] as? [String: Any])?["type"] as? String == "authentication_error")
        #expect(p.received.isEmpty && d.received.isEmpty)
        #expect(try await get(proxy.url + "/admin/backends").status == 401)
        let allowed = try await post(proxy.url + "/v1/chat/completions", chatBody, headers: [("Authorization", "Bearer sekret")])
        #expect(allowed.status == 200)
        #expect(d.received.first?.headers[.authorization] == "Bearer sekret")
        await proxy.stop(); await p.stop(); await d.stop()
    }
}
