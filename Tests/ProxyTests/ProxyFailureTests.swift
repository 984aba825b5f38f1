import AsyncHTTPClient
import Foundation
import NIOCore
import Proxy
import Testing

@Suite("proxy: failure paths", .timeLimit(.minutes(1)))
struct ProxyFailureTests {
    private func errorOf(_ result: HTTPResult) -> [String: Any]? { jsonObject(result.body)?["error"] as? [String: Any] }

    @Test("a dead prefill node is retried once on another prefill node")
    func deadPrefillRetried() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D"), dead = DeadPort()
        let proxy = try await TestProxy(prefill: [], decode: [d], extraPrefill: [dead.url]) { $0.connectTimeout = .seconds(1) }
        _ = proxy.server.pool.add(role: .prefill, url: try Endpoints.parseOne(p.url))
        let r = try await post(proxy.url + "/v1/chat/completions", chatBody)
        #expect(r.status == 200)
        #expect(p.received.count == 1 && d.received.count == 1)
        #expect(try await get(proxy.url + "/metrics").body.contains("proxy_prefill_retries_total 1"))
        await proxy.stop(); await p.stop(); await d.stop()
        withExtendedLifetime(dead) {}  // the refused port stays ours until the end
    }

    @Test("with no prefill node answering, the request goes straight to decode and is counted")
    func noPrefillGoesToDecode() async throws {
        let p = try await FakeNode.start("P", .status(503)), d = try await FakeNode.start("D"), dead = DeadPort()
        let proxy = try await TestProxy(prefill: [p], decode: [d], extraPrefill: [dead.url]) { $0.connectTimeout = .seconds(1) }
        let r = try await post(proxy.url + "/v1/completions", #"{"prompt":"hello","max_tokens":5}"#)
        #expect(r.status == 200)
        #expect(d.received.count == 1)
        #expect(try await get(proxy.url + "/metrics").body.contains("proxy_prefill_skipped_total 1"))
        await proxy.stop(); await p.stop(); await d.stop()
        withExtendedLifetime(dead) {}  // the refused port stays ours until the end
    }

    @Test("a 4xx from prefill goes back to the client with its body; decode is not called")
    func prefillClientErrorForwarded() async throws {
        let p = try await FakeNode.start("P", .status(400)), d = try await FakeNode.start("D")
        let proxy = try await TestProxy(prefill: [p], decode: [d])
        let r = try await post(proxy.url + "/v1/chat/completions", chatBody)
        #expect(r.status == 400)
        #expect(errorOf(r)?["message"] as? String == "fake 400 from P")
        #expect(d.received.isEmpty)
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("4xx and 5xx from decode are forwarded with status and OpenAI body", arguments: [404, 422, 500, 503])
    func decodeErrorForwarded(status: Int) async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D", .status(status))
        let proxy = try await TestProxy(prefill: [p], decode: [d])
        let r = try await post(proxy.url + "/v1/chat/completions", chatBody)
        #expect(r.status == status)
        #expect(errorOf(r)?["message"] as? String == "fake \(status) from D")
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("a dead decode node before the first byte gives a 502 OpenAI error, never an empty 200")
    func deadDecode() async throws {
        let p = try await FakeNode.start("P"), dead = DeadPort()
        let proxy = try await TestProxy(prefill: [p], decode: [], extraDecode: [dead.url]) { $0.connectTimeout = .seconds(1) }
        let r = try await post(proxy.url + "/v1/chat/completions", chatBody)
        #expect(r.status == 502)
        #expect(errorOf(r)?["type"] as? String == "server_error")
        await proxy.stop(); await p.stop()
        withExtendedLifetime(dead) {}  // the refused port stays ours until the end
    }

    @Test("a dead decode node is skipped for a live one when nothing was sent yet")
    func deadDecodeFailover() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D"), dead = DeadPort()
        let proxy = try await TestProxy(prefill: [p], decode: [], extraDecode: [dead.url, d.url]) { $0.connectTimeout = .seconds(1) }
        for _ in 0..<2 { #expect(try await post(proxy.url + "/v1/chat/completions", chatBody).status == 200) }
        #expect(d.received.count == 2)
        await proxy.stop(); await p.stop(); await d.stop()
        withExtendedLifetime(dead) {}  // the refused port stays ours until the end
    }

    @Test("a decode node dying mid-stream ends the stream with an SSE error event")
    func decodeDiesMidStream() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D", .dieMidStream)
        let proxy = try await TestProxy(prefill: [p], decode: [d])
        let r = try await post(proxy.url + "/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#)
        #expect(r.status == 200)
        #expect(r.body.contains(#""content":"Hel""#), "the events before the failure are relayed")
        let events = r.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        let last = try #require(events.last)
        #expect(last.hasPrefix("data: {\"error\""), "\(r.body)")
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("an upstream silent past the idle timeout fails with an error instead of hanging")
    func slowUpstreamIdleTimeout() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D", .delay(.seconds(5)))
        let proxy = try await TestProxy(prefill: [p], decode: [d]) { $0.idleTimeout = .milliseconds(300) }
        let r = try await post(proxy.url + "/v1/chat/completions", chatBody)
        #expect(r.status == 502)
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("a client that disconnects mid-stream cancels the decode request upstream")
    func clientDisconnectCancelsUpstream() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D", .slowStream)
        let proxy = try await TestProxy(prefill: [p], decode: [d])
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            var request = HTTPClientRequest(url: proxy.url + "/v1/chat/completions")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: #"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#))
            let response = try await client.execute(request, timeout: .seconds(30))
            var iterator = response.body.makeAsyncIterator()
            _ = try await iterator.next()
        }
        try await client.shutdown()  // closes the connection mid-stream
        try await waitFor { d.cancelledStreams == 1 }
        try await waitFor { proxy.server.pool.statuses().first { $0.role == .decode }?.inFlight == 0 }
        #expect(try await get(proxy.url + "/metrics").body.contains("proxy_client_disconnects_total 1"))
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("malformed JSON is a 400 OpenAI error and the proxy keeps serving", arguments: [
        "{not json", "[1,2,3]", "", "\"just a string\"",
    ])
    func malformedJSON(body: String) async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D")
        let proxy = try await TestProxy(prefill: [p], decode: [d])
        let r = try await post(proxy.url + "/v1/chat/completions", body)
        #expect(r.status == 400)
        #expect(errorOf(r)?["type"] as? String == "invalid_request_error")
        #expect(p.received.isEmpty && d.received.isEmpty)
        #expect(try await post(proxy.url + "/v1/chat/completions", chatBody).status == 200)
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("a decode-only proxy forwards the bytes as sent, rejects what is not a JSON object, counts no prefill skipped")
    func decodeOnlyProxy() async throws {
        let d = try await FakeNode.start("D")
        let proxy = try await TestProxy(prefill: [], decode: [d])
        // Spacing, key order and a number's spelling survive: nothing was decoded and re-encoded.
        let body = #"{ "prompt" : "hi", "max_tokens":5.0, "n":1 }"#
        let r = try await post(proxy.url + "/v1/completions", body)
        #expect(r.status == 200)
        #expect(d.received.count == 1 && d.received.first?.body == Array(body.utf8))
        for bad in ["{not json", "[1,2,3]", "", "\"just a string\"", #"{"a": [1, }"#] {
            let rejected = try await post(proxy.url + "/v1/completions", bad)
            #expect(rejected.status == 400, "\(bad)")
            #expect(errorOf(rejected)?["type"] as? String == "invalid_request_error")
        }
        #expect(d.received.count == 1)
        let metrics = try await get(proxy.url + "/metrics").body
        #expect(!metrics.contains("proxy_prefill_skipped_total 1") && !metrics.contains("prefill_unavailable"))
        await proxy.stop(); await d.stop()
    }

    @Test("a body over the limit is a 413 OpenAI error")
    func hugeBody() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D")
        let proxy = try await TestProxy(prefill: [p], decode: [d]) { $0.maxBodyBytes = 4096 }
        let big = #"{"prompt":""# + String(repeating: "x", count: 10_000) + #""}"#
        let r = try await post(proxy.url + "/v1/completions", big)
        #expect(r.status == 413)
        #expect(errorOf(r)?["message"] as? String == "request body exceeds 4KiB")
        #expect(try await post(proxy.url + "/v1/completions", #"{"prompt":"ok"}"#).status == 200)
        await proxy.stop(); await p.stop(); await d.stop()
    }

    @Test("no healthy decode node: 503 from completions, /health and /v1/models")
    func noDecodeNode() async throws {
        let p = try await FakeNode.start("P")
        let proxy = try await TestProxy(prefill: [p], decode: [])
        #expect(try await post(proxy.url + "/v1/chat/completions", chatBody).status == 503)
        #expect(try await get(proxy.url + "/health").status == 503)
        #expect(try await get(proxy.url + "/v1/models").status == 503)
        await proxy.stop(); await p.stop()
    }
}

@Suite("proxy: endpoint configuration")
struct EndpointTests {
    @Test("lists are trimmed, empty entries skipped, trailing slashes dropped")
    func parseList() throws {
        let urls = try Endpoints.parse(" http://10.0.0.1:8010 ,http://10.0.0.2:8010/,, https://node.example/base/ ")
        #expect(urls.map(\.absoluteString) == ["http://10.0.0.1:8010", "http://10.0.0.2:8010", "https://node.example/base"])
    }

    @Test("a bad entry is an error naming it", arguments: ["10.0.0.1:8010", "ftp://x", "http://", "http://h:99999", "http://h/?q=1"])
    func badEntry(entry: String) {
        #expect { try Endpoints.parse("http://ok:1,\(entry)") } throws: { error in
            "\(error)".contains("'\(entry)'")
        }
    }

    @Test("flags win; else the real environment beats .env")
    func precedence() throws {
        let env = ["DECODE_ENDPOINTS": "http://env:1"]
        let dot = ["DECODE_ENDPOINTS": "http://dotenv:1", "PREFILL_ENDPOINTS": "http://dotenv:2"]
        #expect(try Endpoints.resolve(role: .decode, flags: [], environment: env, dotEnv: dot).map(\.host) == ["env"])
        #expect(try Endpoints.resolve(role: .prefill, flags: [], environment: env, dotEnv: dot).map(\.host) == ["dotenv"])
        #expect(try Endpoints.resolve(role: .decode, flags: ["http://flag:1"], environment: env, dotEnv: dot).map(\.host) == ["flag"])
    }

    @Test(".env files: comments, export, quotes")
    func dotEnv() throws {
        let path = NSTemporaryDirectory() + "swiftwise-\(UUID().uuidString).env"
        try "# nodes\nexport PREFILL_ENDPOINTS=\"http://a:1, http://b:2\"\nDECODE_ENDPOINTS='http://c:3'\n\nBROKEN\n".write(toFile: path, atomically: true, encoding: .utf8)
        let values = Endpoints.readDotEnv(at: path)
        #expect(values["PREFILL_ENDPOINTS"] == "http://a:1, http://b:2")
        #expect(values["DECODE_ENDPOINTS"] == "http://c:3")
        #expect(values.count == 2)
    }
}
