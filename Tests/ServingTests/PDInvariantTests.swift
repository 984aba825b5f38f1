import Foundation
import KVStore
import KVTransfer
import NIOCore
import OpenAIAPI
import ServiceKit
import Testing

/// The invariant of the design, with real processes on loopback: kvstore + prefill node + decode node (+ proxy)
/// give exactly what one colocated node gives, and the decode node computes only what the store did not hold.
extension Serving {
    @Suite("PD invariant: prefill + store + decode == colocated", .timeLimit(.minutes(6)))
    struct PDInvariantTests {
        /// The four services of the reference design, plus a colocated node to compare with.
        final class Cluster: @unchecked Sendable {
            var store: Service
            let prefill: Service
            let decode: Service
            let colocated: Service
            let configFile: String

            init(chunkSize: Int = 32) async throws {
                store = try Service("kvstore", { ["kvstore", "127.0.0.1", "\($0)", "cpu", "--log-level", "warning"] })
                configFile = TestData.temporaryDirectory() + "/lmcache.yaml"
                try """
                    chunk_size: \(chunkSize)
                    local_device: "cpu"
                    remote_url: "lm://127.0.0.1:\(store.port)"
                    remote_serde: "naive"
                    max_local_cpu_size: 1
                    pipelined_backend: False
                    """.write(toFile: configFile, atomically: true, encoding: .utf8)
                let env = ["LMCACHE_CONFIG_FILE": configFile]
                prefill = try Service.serve("prefill", extra: ["--kv-transfer-config", #"{"kv_connector":"LMCacheConnector","kv_role":"kv_producer"}"#], environment: env)
                decode = try Service.serve("decode", extra: ["--kv-transfer-config", #"{"kv_connector":"LMCacheConnector","kv_role":"kv_consumer"}"#], environment: env)
                colocated = try Service.serve("colocated")
                try await store.waitUntilReady(http: false)
                for s in [prefill, decode, colocated] { try await s.waitUntilReady() }
            }

            func restartStore() async throws {
                store = try Service("kvstore", { ["kvstore", "127.0.0.1", "\($0)", "cpu", "--log-level", "warning"] }, port: store.port)
                try await store.waitUntilReady(http: false)
            }
        }

        struct Generation: Equatable {
            var text: String
            var tokens: [String]
        }

        static func complete(_ node: Service, _ prompt: [Int], maxTokens: Int = 16) async throws -> Generation {
            let body: JSONValue = .object(["model": .string("smol"), "prompt": .array(prompt.map { .number(Double($0)) }),
                                           "max_tokens": .number(Double(maxTokens)), "temperature": .number(0),
                                           "ignore_eos": .bool(true), "logprobs": .number(0)])
            let reply = try await HTTP.post(node.port, "/v1/completions", json: body)
            guard reply.status == 200, let choice = reply.json?["choices"]?.arrayValue?.first else {
                throw Failure(description: "\(reply.status) \(reply.body)")
            }
            return Generation(text: choice["text"]?.stringValue ?? "",
                              tokens: choice["logprobs"]?["tokens"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        }

        struct Failure: Error, CustomStringConvertible { var description: String }

        /// Token ids of a long text, for prompts of exact lengths.
        static func tokens(_ node: Service, count: Int, salt: String) async throws -> [Int] {
            let text = "\(salt): " + String(repeating: "In a quiet village by the sea, fishermen mend their nets at dawn while gulls circle overhead. ", count: 12)
            let reply = try await HTTP.post(node.port, "/tokenize", json: .object(["prompt": .string(text)]))
            let ids = reply.json?["tokens"]?.arrayValue?.compactMap { $0.number.map(Int.init) } ?? []
            guard ids.count >= count else { throw Failure(description: "text too short: \(ids.count)") }
            return Array(ids.prefix(count))
        }

        /// Prompt tokens the decode node computed and loaded while running `body`.
        static func decodeWork(_ decode: Service, _ body: () async throws -> Void) async throws -> (computed: Double, loaded: Double) {
            let before = try await HTTP.metrics(decode.port)
            try await body()
            let after = try await HTTP.metrics(decode.port)
            func delta(_ name: String) -> Double { (after[name] ?? 0) - (before[name] ?? 0) }
            return (delta("swiftwise:prompt_tokens_computed_total"), delta("swiftwise:prompt_tokens_loaded_external_total"))
        }

        @Test("shorter than a chunk, exactly 2 chunks, 2 chunks + remainder: decode output is identical, computing only what the store lacked")
        func invariant() async throws {
            let c = try await Cluster()
            // (prompt length, tokens the decode node must compute)
            for (length, computed) in [(20, 20), (64, 1), (77, 1)] {
                let prompt = try await Self.tokens(c.colocated, count: length, salt: "case \(length)")
                let expected = try await Self.complete(c.colocated, prompt)
                _ = try await Self.complete(c.prefill, prompt, maxTokens: 1)
                var got: Generation?
                let work = try await Self.decodeWork(c.decode) { got = try await Self.complete(c.decode, prompt) }
                #expect(got == expected, "prompt of \(length) tokens")
                #expect(expected.tokens.count == 16)
                #expect(work.computed == Double(computed), "prompt of \(length): computed \(work.computed)")
                #expect(work.loaded == Double(length - computed), "prompt of \(length): loaded \(work.loaded)")
            }
            // The producer stored every chunk once: 3 for 77 tokens (2 full + the partial), 2 for 64; none for 20 (a
            // prompt shorter than a chunk is recomputed on decode, so storing it would be waste).
            let produced = try await HTTP.metrics(c.prefill.port)
            #expect(produced["swiftwise:kv_transfer_chunks_stored_total"] == 5, "\(produced.filter { $0.key.contains("kv_transfer_chunks") })")

            // A chunk whose shape does not fit the model is ignored (and counted), never loaded.
            let prompt = try await Self.tokens(c.colocated, count: 40, salt: "bogus")
            let keys = ChunkKeys(modelName: TestData.defaultModelPath, chunkSize: 32)
            let client = KVStoreClient(host: "127.0.0.1", port: c.store.port)
            let bogus = StoredObject(metadata: ObjectMetadata(fmt: 1, dtype: 4, shape: (2, 30, 32, 100)), payload: ByteBuffer(repeating: 7, count: 2 * 30 * 32 * 100 * 4))
            try await client.put(keys.key(keys.hashes(prompt)[0]), bogus)
            #expect(try await client.exists(keys.key(keys.hashes(prompt)[0])))
            await client.shutdown()
            let expected = try await Self.complete(c.colocated, prompt)
            var got: Generation?
            let work = try await Self.decodeWork(c.decode) { got = try await Self.complete(c.decode, prompt) }
            #expect(got == expected)
            #expect(work.computed == 40 && work.loaded == 0)
            #expect(try await HTTP.metrics(c.decode.port)["swiftwise:kv_transfer_chunks_mismatched_total"] == 1)
        }

        @Test("store killed between prefill and decode: decode recomputes, output identical; after a restart the clients reconnect and hit again")
        func storeFaults() async throws {
            let c = try await Cluster()
            let first = try await Self.tokens(c.colocated, count: 70, salt: "fault one")
            _ = try await Self.complete(c.prefill, first, maxTokens: 1)
            await c.store.kill()
            for attempt in 0..<2 {
                let prompt = attempt == 0 ? first : try await Self.tokens(c.colocated, count: 50, salt: "fault two")
                let expected = try await Self.complete(c.colocated, prompt)
                var got: Generation?
                let work = try await Self.decodeWork(c.decode) { got = try await Self.complete(c.decode, prompt) }
                #expect(got == expected)
                #expect(work.computed == Double(prompt.count) && work.loaded == 0)
            }
            #expect(c.decode.log.components(separatedBy: "unavailable").count - 1 == 1, "one warning per outage:\n\(c.decode.log)")

            try await c.restartStore()
            let later = try await Self.tokens(c.colocated, count: 66, salt: "after restart")
            // The producer's client may still be backing off from the outage: prefill until its chunks are stored.
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                _ = try await Self.complete(c.prefill, later, maxTokens: 1)
                let client = KVStoreClient(host: "127.0.0.1", port: c.store.port)
                let keys = ChunkKeys(modelName: TestData.defaultModelPath, chunkSize: 32)
                let stored = try await client.exists(keys.key(keys.hashes(later).last!))
                await client.shutdown()
                if stored { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            let expected = try await Self.complete(c.colocated, later)
            var got: Generation?
            var work = (computed: 0.0, loaded: 0.0)
            // The decode node's client reconnects by itself (after its backoff).
            while ContinuousClock.now < deadline {
                work = try await Self.decodeWork(c.decode) { got = try await Self.complete(c.decode, later) }
                #expect(got == expected)
                if work.loaded > 0 { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(work.computed == 1 && work.loaded == 65)
        }

        @Test("through the proxy (PREFILL_ENDPOINTS / DECODE_ENDPOINTS): a chat request equals the colocated answer")
        func throughProxy() async throws {
            let c = try await Cluster()
            let proxy = try Service("proxy", { ["proxy", "--host", "127.0.0.1", "--port", "\($0)", "--log-level", "warning"] },
                                    environment: ["PREFILL_ENDPOINTS": "http://127.0.0.1:\(c.prefill.port)",
                                                  "DECODE_ENDPOINTS": " http://127.0.0.1:\(c.decode.port) "])
            try await proxy.waitUntilReady()
            let body = #"{"model": "smol", "temperature": 0, "messages": [{"role": "system", "content": "You are a helpful travel guide. You answer in detail, with the history of each place, what to see, where to eat, and how to get around."}, {"role": "user", "content": "San Francisco"}], "max_tokens": 24}"#
            let expected = try await HTTP.post(c.colocated.port, "/v1/chat/completions", body)
            var viaProxy: HTTP.Reply?
            let work = try await Self.decodeWork(c.decode) { viaProxy = try await HTTP.post(proxy.port, "/v1/chat/completions", body) }
            let content = { (r: HTTP.Reply?) in r?.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue }
            #expect(viaProxy?.status == 200, "\(viaProxy?.body ?? "")")
            #expect(content(viaProxy) == content(expected))
            #expect(content(expected)?.isEmpty == false)
            let promptTokens = expected.json?["usage"]?["prompt_tokens"]?.number ?? 0
            #expect(promptTokens >= 32)
            #expect(work.computed == 1 && work.loaded == promptTokens - 1, "\(work)")
        }
    }
}
