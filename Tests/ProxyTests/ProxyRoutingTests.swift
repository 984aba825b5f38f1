import AsyncHTTPClient
import Foundation
import Proxy
import Testing

@Suite("proxy: routing policies and membership", .timeLimit(.minutes(1)))
struct ProxyRoutingTests {
    private func startNodes(_ prefix: String, _ count: Int) async throws -> [FakeNode] {
        var nodes: [FakeNode] = []
        for i in 0..<count { nodes.append(try await FakeNode.start("\(prefix)\(i)")) }
        return nodes
    }

    @Test("round robin with 2P3D keeps separate counters for prefill and decode")
    func roundRobin2P3D() async throws {
        let ps = try await startNodes("P", 2), ds = try await startNodes("D", 3)
        let proxy = try await TestProxy(prefill: ps, decode: ds)
        for i in 0..<6 {
            let r = try await post(proxy.url + "/v1/chat/completions", chatBody)
            #expect(r.status == 200, "request \(i)")
        }
        #expect(ps.map(\.received.count) == [3, 3])
        #expect(ds.map(\.received.count) == [2, 2, 2])
        // Order: P0 P1 P0 ... and D0 D1 D2 D0 ...; check by replaying the decode answers.
        var owners: [String] = []
        for _ in 0..<3 {
            let r = try await post(proxy.url + "/v1/completions", #"{"prompt":"x"}"#)
            owners.append((((jsonObject(r.body)?["choices"] as? [[String: Any]])?.first?["text"]) as? String) ?? "")
        }
        #expect(owners == ["Hello from D0", "Hello from D1", "Hello from D2"])
        await proxy.stop()
        for n in ps + ds { await n.stop() }
    }

    @Test("least_loaded avoids the node that is busy with a slow request")
    func leastLoadedSkewedLatency() async throws {
        let p = try await FakeNode.start("P")
        let slow = try await FakeNode.start("slow", .holdAfterFirstEvent), fast = try await FakeNode.start("fast")
        let proxy = try await TestProxy(prefill: [p], decode: [slow, fast]) { $0.policy = .leastLoaded }
        // Occupy one node with a request that does not finish until released.
        let long = Task { try await post(proxy.url + "/v1/chat/completions", #"{"messages":[{"role":"user","content":"long"}],"stream":true}"#) }
        let deadline = ContinuousClock.now + .seconds(10)
        while slow.received.isEmpty && fast.received.isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let busy = slow.received.isEmpty ? fast : slow
        let idle = busy === slow ? fast : slow
        busy.set(.ok); idle.set(.ok)
        for _ in 0..<6 { _ = try await post(proxy.url + "/v1/chat/completions", chatBody) }
        #expect(busy.received.count == 1)
        #expect(idle.received.count == 6)
        slow.release(); fast.release()
        _ = try await long.value
        await proxy.stop(); await p.stop(); await slow.stop(); await fast.stop()
    }

    @Test("prefix_aware sends the same prompt prefix to the same node and spreads different ones")
    func prefixAware() async throws {
        let ps = try await startNodes("P", 2), ds = try await startNodes("D", 3)
        let proxy = try await TestProxy(prefill: ps, decode: ds) { $0.policy = .prefixAware }
        let shared = String(repeating: "You are a helpful assistant. ", count: 10)
        for i in 0..<5 {
            let body = #"{"messages":[{"role":"system","content":"\#(shared)"},{"role":"user","content":"question \#(i)"}]}"#
            _ = try await post(proxy.url + "/v1/chat/completions", body)
        }
        #expect(ds.filter { !$0.received.isEmpty }.count == 1, "one decode node holds the shared prefix")
        #expect(ps.filter { !$0.received.isEmpty }.count == 1, "one prefill node holds the shared prefix")
        for i in 0..<30 { _ = try await post(proxy.url + "/v1/completions", #"{"prompt":"distinct prompt number \#(i) with its own prefix"}"#) }
        #expect(ds.filter { $0.received.count > 1 }.count >= 2, "different prefixes spread over the nodes")
        await proxy.stop()
        for n in ps + ds { await n.stop() }
    }

    @Test("backends can be added and removed at runtime")
    func adminMembership() async throws {
        let p = try await FakeNode.start("P"), d0 = try await FakeNode.start("D0"), d1 = try await FakeNode.start("D1")
        let proxy = try await TestProxy(prefill: [p], decode: [d0])
        let added = try await post(proxy.url + "/admin/backends", #"{"role":"decode","url":"\#(d1.url)/"}"#)
        #expect(added.status == 201)
        for _ in 0..<4 { _ = try await post(proxy.url + "/v1/chat/completions", chatBody) }
        #expect(d0.received.count == 2 && d1.received.count == 2)
        let bad = try await post(proxy.url + "/admin/backends", #"{"role":"decode","url":"ftp://x"}"#)
        #expect(bad.status == 400)
        var request = try await httpDelete(proxy.url + "/admin/backends?role=decode&url=\(d0.url)")
        #expect(request == 200)
        for _ in 0..<3 { _ = try await post(proxy.url + "/v1/chat/completions", chatBody) }
        #expect(d0.received.count == 2 && d1.received.count == 5)
        request = try await httpDelete(proxy.url + "/admin/backends?role=decode&url=\(d0.url)")
        #expect(request == 404)
        await proxy.stop(); await p.stop(); await d0.stop(); await d1.stop()
    }

    @Test("a node failing its health probe is ejected and re-admitted when it recovers")
    func healthEjectionAndReadmission() async throws {
        let p = try await FakeNode.start("P"), d0 = try await FakeNode.start("D0"), d1 = try await FakeNode.start("D1")
        let proxy = try await TestProxy(prefill: [p], decode: [d0, d1]) { $0.healthInterval = .milliseconds(50) }
        d0.setHealthy(false)
        try await waitFor { proxy.server.pool.statuses().first { $0.url == d0.url }?.healthy == false }
        for _ in 0..<3 { _ = try await post(proxy.url + "/v1/chat/completions", chatBody) }
        #expect(d0.received.isEmpty && d1.received.count == 3)
        d0.setHealthy(true)
        try await waitFor { proxy.server.pool.statuses().first { $0.url == d0.url }?.healthy == true }
        for _ in 0..<2 { _ = try await post(proxy.url + "/v1/chat/completions", chatBody) }
        #expect(d0.received.count == 1)
        await proxy.stop(); await p.stop(); await d0.stop(); await d1.stop()
    }
}

func waitFor(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        guard ContinuousClock.now < deadline else { Issue.record("condition not met in time"); return }
        try await Task.sleep(for: .milliseconds(10))
    }
}

func httpDelete(_ url: String) async throws -> Int {
    var request = HTTPClientRequest(url: url)
    request.method = .DELETE
    let response = try await testClient.execute(request, timeout: .seconds(10))
    _ = try await response.body.collect(upTo: 1 << 20)
    return Int(response.status.code)
}
