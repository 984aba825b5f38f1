import ArgumentParser
import AsyncHTTPClient
import Bench
import Foundation
import Logging
import ModelFiles
import Models
import NIOCore
import OpenAIAPI
import ServiceKit

/// `swiftwise bench pd`: what KV transfer buys a decode node. For each prompt length: the decode node's TTFT when
/// the store holds the prompt (prefill node ran first) against a full recompute (a prompt never stored), bytes
/// moved, and the transfer rate against this machine's loopback limits.
struct PDBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pd", abstract: "Decode-node TTFT with KV from the store vs full recompute; KV transfer GB/s vs the loopback limit.")

    @Option(help: "A GGUF model (default: the one scripts/setup.sh fetched).") var model: String?
    @Option(help: "Prompt lengths in tokens.") var lengths = "256,1024,4096"
    @Option(help: "LMCache chunk_size.") var chunkSize = 256
    @Option(help: "naive or kivi.") var serde = "naive"
    @Option(help: "Runs per length (the median TTFT is reported).") var repeats = 1
    @Option(help: "Kernel threads per node.") var threads: Int?
    @Option(help: "Write the results as JSON here.") var json: String?

    struct Row: Codable {
        var promptTokens: Int
        var recomputeTTFTms: Double
        var hitTTFTms: Double
        var speedup: Double
        var bytesMoved: Double
        var fetchSeconds: Double
        var transferGBps: Double
        var computedOnHit: Double
        var sameFirstToken: Bool
        /// Greedy continuation (32 tokens) on the decode node with the stored KV vs the prefill node computing all:
        /// identical leading tokens (32 with naive; kivi is lossy).
        var greedyIdenticalPrefix: Int
    }

    func run() async throws {
        bootstrapLogging(level: .warning)
        let logger = Logger(label: "swiftwise.bench.pd")
        let sizes = lengths.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizes.isEmpty, let longest = sizes.max() else { throw ValidationError("--lengths: a comma-separated list of token counts") }
        let modelPath = model ?? DemoCommand.defaultModel
        let work = NSTemporaryDirectory() + "swiftwise-bench-pd-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let storePort = findFreePort()
        let configFile = work + "/lmcache.yaml"
        try "chunk_size: \(chunkSize)\nremote_url: \"lm://127.0.0.1:\(storePort)\"\nremote_serde: \"\(serde)\"\nmax_local_cpu_size: 0\n"
            .write(toFile: configFile, atomically: true, encoding: .utf8)
        let maxLen = longest + 64  // room for the 32-token greedy continuation
        let config = try ModelConfig(gguf: GGUFFile(path: modelPath))
        let kvMemory = ByteSize(bytes: max(256 << 20, 2 * (maxLen + 64) * PagedKVCache.bytesPerToken(config)))
        func node(_ role: String, _ kvRole: String) -> Supervisor.Spec {
            let p = findFreePort()
            var args = ["serve", modelPath, "--host", "127.0.0.1", "--port", "\(p)", "--served-model-name", "m",
                        "--max-model-len", "\(maxLen)", "--kv-cache-memory", kvMemory.description, "--max-num-batched-tokens", "\(maxLen)",
                        "--kv-transfer-config", #"{"kv_connector":"LMCacheConnector","kv_role":"\#(kvRole)"}"#, "--log-level", "warning"]
            if let threads { args += ["--threads", "\(threads)"] }
            return .init(role: role, port: p, arguments: args, environment: ["LMCACHE_CONFIG_FILE": configFile])
        }
        let prefillNode = node("prefill", "kv_producer"), decodeNode = node("decode", "kv_consumer")
        let specs: [Supervisor.Spec] = [
            .init(role: "kvstore", port: storePort, arguments: ["kvstore", "127.0.0.1", "\(storePort)", "cpu", "--capacity", "8GiB", "--log-level", "warning"], http: false),
            prefillNode, decodeNode,
        ]
        let supervisor = Supervisor(executable: ChildProcess.currentExecutable, logger: logger)
        defer { supervisor.stopAll(order: ["decode", "prefill", "kvstore"]) }
        for spec in specs { try supervisor.start(spec) }
        for spec in specs { try await supervisor.waitUntilReady(spec) }

        let memcpy = LoopbackLimit.memcpyGBps()
        let tcp = try LoopbackLimit.tcpGBps()
        var rows: [Row] = []
        for (index, length) in sizes.enumerated() {
            var samples: [Row] = []
            for r in 0..<repeats {
                let stored = Self.prompt(length, salt: 1000 * index + 2 * r)
                let fresh = Self.prompt(length, salt: 1000 * index + 2 * r + 1)
                let (recomputeTime, recomputeFirst, _) = try await Self.complete(decodeNode.port, fresh)
                _ = try await Self.complete(prefillNode.port, stored)
                let before = try await Self.metrics(decodeNode.port)
                let (hitTime, hitFirst, _) = try await Self.complete(decodeNode.port, stored)
                let after = try await Self.metrics(decodeNode.port)
                let (_, expectedFirst, _) = try await Self.complete(prefillNode.port, stored)
                _ = recomputeFirst
                let continued = try await Self.greedyIDs(decodeNode.port, stored), reference = try await Self.greedyIDs(prefillNode.port, stored)
                let identical = zip(continued, reference).prefix { $0 == $1 }.count
                func delta(_ k: String) -> Double { (after[k] ?? 0) - (before[k] ?? 0) }
                let bytes = delta("swiftwise:kv_transfer_bytes_fetched_total")
                let fetch = delta("swiftwise:kv_transfer_fetch_seconds_sum")
                samples.append(Row(promptTokens: length, recomputeTTFTms: recomputeTime * 1000, hitTTFTms: hitTime * 1000,
                                   speedup: recomputeTime / hitTime, bytesMoved: bytes, fetchSeconds: fetch,
                                   transferGBps: fetch > 0 ? bytes / fetch / 1e9 : 0,
                                   computedOnHit: delta("swiftwise:prompt_tokens_computed_total"), sameFirstToken: hitFirst == expectedFirst,
                                   greedyIdenticalPrefix: identical))
            }
            rows.append(samples.sorted { $0.hitTTFTms < $1.hitTTFTms }[samples.count / 2])
        }
        print("decode node, \(serde) serde, chunk_size \(chunkSize); limits on this machine: memcpy \(String(format: "%.1f", memcpy)) GB/s, TCP loopback \(String(format: "%.1f", tcp)) GB/s")
        print("prompt | recompute TTFT | hit TTFT | speedup | computed on hit | KV moved | fetch time | transfer | of TCP limit | greedy 32 identical")
        for r in rows {
            print(String(format: "%6d | %11.0f ms | %6.0f ms | %6.1fx | %15.0f | %6.1f MB | %7.1f ms | %5.2f GB/s | %10.0f%% | %d/32",
                         r.promptTokens, r.recomputeTTFTms, r.hitTTFTms, r.speedup, r.computedOnHit, r.bytesMoved / 1e6,
                         r.fetchSeconds * 1000, r.transferGBps, 100 * r.transferGBps / tcp, r.greedyIdenticalPrefix))
        }
        if let json {
            struct Report: Codable { var serde: String; var chunkSize: Int; var memcpyGBps: Double; var tcpGBps: Double; var rows: [Row] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(Report(serde: serde, chunkSize: chunkSize, memcpyGBps: memcpy, tcpGBps: tcp, rows: rows))
                .write(to: URL(fileURLWithPath: json))
        }
    }

    /// Distinct, deterministic token ids (a valid range for any vocabulary of 32k or more).
    static func prompt(_ length: Int, salt: Int) -> [Int] {
        (0..<length).map { 1000 + (($0 + 1) * 7919 + salt * 104_729) % 20000 }
    }

    /// One non-streamed completion of 1 token: its latency is the node's TTFT plus one HTTP round trip.
    static func complete(_ port: Int, _ prompt: [Int]) async throws -> (Double, String, JSONValue?) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        let body: JSONValue = .object(["prompt": .array(prompt.map { .number(Double($0)) }), "max_tokens": .number(1), "temperature": .number(0)])
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let start = ContinuousClock.now
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let elapsed = (ContinuousClock.now - start).seconds
        guard response.status == .ok else { throw ValidationError("node answered \(response.status.code): \(String(buffer: bytes))") }
        let json = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes.readableBytesView))
        return (elapsed, json?["choices"]?.arrayValue?.first?["text"]?.stringValue ?? "", json)
    }

    /// 32 greedy tokens as ids.
    static func greedyIDs(_ port: Int, _ prompt: [Int]) async throws -> [String] {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        let body: JSONValue = .object(["prompt": .array(prompt.map { .number(Double($0)) }), "max_tokens": .number(32), "temperature": .number(0),
                                       "ignore_eos": .bool(true), "logprobs": .number(0), "return_tokens_as_token_ids": .bool(true)])
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let json = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes.readableBytesView))
        return json?["choices"]?.arrayValue?.first?["logprobs"]?["tokens"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    static func metrics(_ port: Int) async throws -> [String: Double] {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 16 << 20))
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            if let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) { out[String(line[..<space])] = v }
        }
        return out
    }
}
