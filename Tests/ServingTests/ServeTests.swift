import AsyncHTTPClient
import Foundation
import NIOCore
import OpenAIAPI
import ServiceKit
import Testing

/// `swiftwise serve` as a process on the default model, driven over real HTTP.
extension Serving {
    @Suite("swiftwise serve", .timeLimit(.minutes(5)))
    struct ServeTests {
        @Test("the official openai Python client: chat and completions, streamed and not, usage, logprobs, seed, stop, errors")
        func openaiClient() async throws {
            let serve = try Service.serve("serve")
            try await serve.waitUntilReady()
            let script = TestData.packageRoot.appendingPathComponent("Tests/python/serve_client_check.py").path
            let log = TestData.temporaryDirectory() + "/client.log"
            let python = try ChildProcess(name: "python", executable: "/usr/bin/env",
                                          arguments: ["python3", script, "http://127.0.0.1:\(serve.port)/v1", "smol"], logFile: log)
            let status = await python.exitStatus()
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(status == 0, "\(output)\n--- server ---\n\(serve.log.suffix(3000))")
            #expect(output.contains("serve_client_check: ok"))
        }

        @Test("bad input gets a clear OpenAI-shaped error with the right status; the server keeps serving")
        func badInput() async throws {
            let serve = try Service.serve("serve-errors", extra: ["--api-key", "k3y", "--max-body-size", "8KiB", "--max-model-len", "256"])
            try await serve.waitUntilReady()
            let auth = [("Authorization", "Bearer k3y")]
            let chat = "/v1/chat/completions"
            let cases: [(String, String, Int, String)] = [
                (chat, "{not json", 400, "not valid JSON"),
                (chat, "[1,2]", 400, "JSON object"),
                (chat, #"{"messages": "hi"}"#, 400, "messages"),
                (chat, #"{"messages": []}"#, 400, "must not be empty"),
                (chat, #"{"messages": [{"content": "x"}]}"#, 400, "role"),
                (chat, #"{"messages": [{"role": "user", "content": "x"}], "max_tokens": -5}"#, 400, "max_tokens"),
                (chat, #"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e12}"#, 400, "max_tokens"),
                (chat, #"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 250}"#, 400, "maximum context length is 256"),
                (chat, #"{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}"#, 400, "temperature"),
                (chat, #"{"messages": [{"role": "user", "content": "x"}], "top_p": 0}"#, 400, "top_p"),
                (chat, #"{"messages": [{"role": "user", "content": "x"}], "stop": 5}"#, 400, "stop"),
                (chat, #"{"messages": [{"role": "user", "content": "x"}], "n": 0}"#, 400, "'n'"),
                (chat, #"{"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}"#, 404, "does not exist"),
                ("/v1/completions", #"{"prompt": [1, 2, 99999999]}"#, 400, "token ids"),
                ("/v1/completions", #"{"prompt": ""}"#, 400, "empty"),
                ("/v1/completions", #"{"prompt": "\#(String(repeating: "word ", count: 300))", "max_tokens": 1}"#, 400, "maximum context length is 256"),
                ("/v1/completions", "{\"prompt\": \"\(String(repeating: "x", count: 9000))\"}", 413, "exceeds"),
            ]
            for (path, body, status, fragment) in cases {
                let reply = try await HTTP.post(serve.port, path, body, headers: auth)
                #expect(reply.status == status, "\(body.prefix(80)) → \(reply.status) \(reply.body)")
                let message = reply.json?["error"]?["message"]?.stringValue ?? ""
                #expect(message.contains(fragment), "\(body.prefix(80)) → \(reply.body)")
                #expect(reply.json?["error"]?["code"]?.number == Double(status))
            }
            let unauthorized = try await HTTP.post(serve.port, chat, #"{"messages": [{"role": "user", "content": "x"}]}"#)
            #expect(unauthorized.status == 401)
            let ok = try await HTTP.post(serve.port, "/v1/completions", #"{"prompt": "The capital of France is", "max_tokens": 2, "temperature": 0}"#, headers: auth)
            #expect(ok.status == 200, "\(ok.body)")
            #expect(ok.json?["choices"]?.arrayValue?.first?["text"]?.stringValue == " Paris.")
            let tokens = try await HTTP.post(serve.port, "/tokenize", #"{"prompt": "The capital of France is"}"#)
            #expect(tokens.json?["count"]?.number == 5 && tokens.json?["max_model_len"]?.number == 256, "\(tokens.body)")
            let text = try await HTTP.post(serve.port, "/detokenize", #"{"tokens": \#(tokens.json!["tokens"]!.arrayValue!.map { Int($0.number!) })}"#)
            #expect(text.json?["prompt"]?.stringValue == "The capital of France is")
        }

        @Test("a client that disconnects mid-stream aborts its request: running 0 and KV usage back to 0")
        func disconnectFreesBlocks() async throws {
            let serve = try Service.serve("serve-disconnect")
            try await serve.waitUntilReady()
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(serve.port)/v1/completions")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: #"{"prompt": "Tell me a very long story.", "max_tokens": 900, "ignore_eos": true, "stream": true}"#))
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                let response = try await client.execute(request, timeout: .seconds(60))
                var chunks = 0
                for try await _ in response.body {
                    chunks += 1
                    if chunks == 3 { break }
                }
            }
            try await client.shutdown()  // closes the connection under the running stream
            let deadline = ContinuousClock.now + .seconds(20)
            var metrics: [String: Double] = [:]
            while ContinuousClock.now < deadline {
                metrics = try await HTTP.metrics(serve.port)
                if metrics["vllm:request_success_total{finished_reason=\"abort\"}"] == 1 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(metrics["vllm:request_success_total{finished_reason=\"abort\"}"] == 1, "\(metrics)")
            #expect(metrics["vllm:num_requests_running"] == 0)
            #expect(metrics["vllm:kv_cache_usage_perc"] == 0)
            #expect((metrics["vllm:generation_tokens_total"] ?? 900) < 900)
        }

        @Test("32 concurrent streaming greedy requests of mixed lengths over HTTP each equal the same request alone")
        func concurrentStreamsEqualAlone() async throws {
            let serve = try Service.serve("serve-concurrent", extra: ["--max-num-batched-tokens", "128"])
            try await serve.waitUntilReady()
            let words = "the quick brown fox jumps over the lazy dog while seven curious otters watch from the river bank"
                .split(separator: " ")
            let requests: [String] = (0..<32).map { i in
                let prompt = (0..<(2 + (i * 7) % 40)).map { String(words[($0 + i) % words.count]) }.joined(separator: " ")
                return #"{"prompt": "\#(prompt)", "max_tokens": \#(3 + i % 6), "temperature": 0, "ignore_eos": true, "stream": true}"#
            }
            /// The streamed text of one request, from its SSE events.
            func streamed(_ body: String) async throws -> String {
                let reply = try await HTTP.post(serve.port, "/v1/completions", body)
                guard reply.status == 200 else { throw Service.ServiceFailed(log: reply.body) }
                var text = ""
                for event in reply.body.components(separatedBy: "\n\n") where event.hasPrefix("data: {") {
                    let json = try JSONDecoder().decode(JSONValue.self, from: Data(event.dropFirst(6).utf8))
                    text += json["choices"]?.arrayValue?.first?["text"]?.stringValue ?? ""
                }
                return text
            }
            let together = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for (i, body) in requests.enumerated() { group.addTask { (i, try await streamed(body)) } }
                var out = [String](repeating: "", count: requests.count)
                for try await (i, text) in group { out[i] = text }
                return out
            }
            for (i, body) in requests.enumerated() {
                let alone = try await streamed(body)
                #expect(together[i] == alone, "request \(i)")
                #expect(!alone.isEmpty)
            }
        }

        @Test("a token budget below --max-num-seqs is refused at startup, naming both flags")
        func budgetBelowSequences() async throws {
            let (status, output) = try await ChildProcess.run(TestData.swiftwise, ["serve", TestData.defaultModelPath, "--max-num-seqs", "64",
                                                                                    "--max-num-batched-tokens", "32"])
            #expect(status != 0)
            #expect(output.contains("--max-num-batched-tokens (32) must be at least --max-num-seqs (64)"), "\(output)")
        }

        @Test("a flood beyond --max-num-seqs and the queue gets 503s, never a crash; the server serves afterwards")
        func flood() async throws {
            let serve = try Service.serve("serve-flood", extra: ["--max-num-seqs", "1", "--max-queued-requests", "1"])
            try await serve.waitUntilReady()
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<8 {
                    group.addTask {
                        try await HTTP.post(serve.port, "/v1/completions", #"{"prompt": "Count: \#(i)", "max_tokens": 24, "ignore_eos": true}"#).status
                    }
                }
                var all: [Int] = []
                for try await s in group { all.append(s) }
                return all
            }
            #expect(Set(statuses).isSubset(of: [200, 503]), "\(statuses)")
            #expect(statuses.contains(503) && statuses.contains(200), "\(statuses)")
            let after = try await HTTP.post(serve.port, "/v1/completions", #"{"prompt": "The capital of France is", "max_tokens": 2, "temperature": 0}"#)
            #expect(after.status == 200)
        }
    }
}
