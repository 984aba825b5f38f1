import Foundation
import ServiceKit
import Testing

@Suite("proxy: the openai Python client", .timeLimit(.minutes(2)))
struct OpenAIClientTests {
    @Test("chat and completions, streamed and not, through the proxy with the official openai client")
    func openAIClientThroughProxy() async throws {
        let p = try await FakeNode.start("P"), d = try await FakeNode.start("D")
        let proxy = try await TestProxy(prefill: [p], decode: [d]) { $0.apiKey = "sekret" }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("python/openai_client_check.py").path
        let (status, log) = try await ChildProcess.run("/usr/bin/env",
                                                       ["python3", script, proxy.url + "/v1", "sekret", "Hello from D", "Hello"])
        #expect(status == 0, "\(log)")
        #expect(log.contains("openai_client_check: ok"))
        #expect(p.received.count == 4, "every completion was prefilled first")
        #expect(d.received.count == 4, "four completions reached decode")
        await proxy.stop(); await p.stop(); await d.stop()
    }
}
