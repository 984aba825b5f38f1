import AsyncHTTPClient
import Foundation
import NIOCore
import OpenAIAPI
import ServiceKit

/// What one streamed request measured.
public struct RequestSample: Codable, Sendable {
    public var ok: Bool
    public var error: String?
    public var promptTokens: Int
    public var outputTokens: Int
    public var ttft: Double
    public var e2e: Double
    public var itl: [Double]
    /// Whether the server sent a response head (a failure before it may be retried).
    public var answered: Bool? = false

    /// Time per output token after the first.
    public var tpot: Double? { outputTokens > 1 ? (e2e - ttft) / Double(outputTokens - 1) : nil }
}

public struct ServingLoadOptions: Sendable {
    public var baseURL: String
    public var endpoint: String  // chat or completions
    public var model: String?
    public var requestRate: Double = .infinity
    public var maxConcurrency: Int?
    public var ignoreEOS = true
    public var seed: UInt64 = 0
    public var apiKey: String?
    /// 0: greedy. Above 0 the request also carries top_p, top_k and min_p, every one of them, so that a server's own
    /// defaults (llama-server's top_k 40, top_p 0.95, min_p 0.05) do not change the work it is given.
    public var temperature: Double = 0
    public var topP: Double = 1
    public var topK: Int = 0
    public var minP: Double = 0

    public init(baseURL: String, endpoint: String) {
        self.baseURL = baseURL
        self.endpoint = endpoint
    }
}

/// Sends the requests as `vllm bench serve` does: Poisson arrivals at `requestRate` (all at once when infinite),
/// at most `maxConcurrency` in flight, every response streamed and timed per token.
public func runServingLoad(_ requests: [BenchRequest], options: ServingLoadOptions,
                           progress: @escaping @Sendable (Int, Int) -> Void) async -> (samples: [RequestSample], seconds: Double) {
    let client = HTTPClient(eventLoopGroupProvider: .singleton,
                            configuration: .init(timeout: .init(connect: .seconds(10), read: .seconds(600)),
                                                 connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 4096)))
    var rng = SplitMix(seed: options.seed ^ 0xA5A5)
    let gate = ConcurrencyGate(limit: options.maxConcurrency ?? Int.max)
    let counter = Counter()
    let start = ContinuousClock.now
    let samples = await withTaskGroup(of: RequestSample.self) { group in
        var next = start
        for request in requests {
            if options.requestRate.isFinite {
                next = next + .nanoseconds(Int64(rng.exponential(rate: options.requestRate) * 1e9))
                try? await Task.sleep(until: next, clock: .continuous)
            }
            await gate.enter()
            group.addTask {
                let sample = await streamOne(request, options: options, client: client)
                await gate.leave()
                progress(counter.increment(), requests.count)
                return sample
            }
        }
        var all: [RequestSample] = []
        for await s in group { all.append(s) }
        return all
    }
    let elapsed = (ContinuousClock.now - start).seconds
    try? await client.shutdown()
    return (samples, elapsed)
}

/// One request; a pooled connection the server already closed (keep-alive expiry) fails before any response
/// byte and is retried on a fresh connection, as HTTP clients do for requests nothing was answered to.
func streamOne(_ request: BenchRequest, options: ServingLoadOptions, client: HTTPClient) async -> RequestSample {
    var sample = await streamOnce(request, options: options, client: client)
    for _ in 0..<2 where !sample.ok && sample.answered == false {
        sample = await streamOnce(request, options: options, client: client)
    }
    return sample
}

private func streamOnce(_ request: BenchRequest, options: ServingLoadOptions, client: HTTPClient) async -> RequestSample {
    var body: [String: JSONValue] = ["stream": .bool(true), "max_tokens": .number(Double(request.outputTokens)),
                                     "temperature": .number(options.temperature), "ignore_eos": .bool(options.ignoreEOS),
                                     "stream_options": .object(["include_usage": .bool(true)])]
    if options.temperature > 0 {
        body["top_p"] = .number(options.topP)
        body["top_k"] = .number(Double(options.topK))
        body["min_p"] = .number(options.minP)
    }
    if let model = options.model { body["model"] = .string(model) }
    let path: String
    if options.endpoint == "chat" {
        body["messages"] = .array([.object(["role": .string("user"), "content": .string(request.prompt)])])
        path = "/v1/chat/completions"
    } else {
        body["prompt"] = .string(request.prompt)
        path = "/v1/completions"
    }
    var http = HTTPClientRequest(url: options.baseURL + path)
    http.method = .POST
    http.headers.add(name: "Content-Type", value: "application/json")
    if let key = options.apiKey { http.headers.add(name: "Authorization", value: "Bearer \(key)") }
    var sample = RequestSample(ok: false, error: nil, promptTokens: 0, outputTokens: 0, ttft: 0, e2e: 0, itl: [], answered: false)
    let sent = ContinuousClock.now
    do {
        http.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(JSONValue.object(body))))
        let response = try await client.execute(http, timeout: .seconds(600))
        sample.answered = true
        guard response.status == .ok else {
            let text = try await response.body.collect(upTo: 1 << 20)
            sample.error = "HTTP \(response.status.code): \(String(buffer: text).prefix(200))"
            return sample
        }
        var pending = ""
        var last: Double?
        var contentChunks = 0
        for try await chunk in response.body {
            pending += String(buffer: chunk)
            while let end = pending.range(of: "\n\n") {
                let event = String(pending[..<end.lowerBound])
                pending = String(pending[end.upperBound...])
                guard event.hasPrefix("data: "), !event.hasSuffix("[DONE]"),
                      let json = try? JSONDecoder().decode(JSONValue.self, from: Data(event.dropFirst(6).utf8)) else { continue }
                if case .object? = json["usage"], let usage = json["usage"] {
                    if case .number(let c)? = usage["completion_tokens"] { sample.outputTokens = Int(c) }
                    if case .number(let p)? = usage["prompt_tokens"] { sample.promptTokens = Int(p) }
                }
                let choice = json["choices"]?.arrayValue?.first
                let text = choice?["delta"]?["content"]?.stringValue ?? choice?["text"]?.stringValue ?? ""
                guard !text.isEmpty else { continue }
                let now = (ContinuousClock.now - sent).seconds
                if let last { sample.itl.append(now - last) } else { sample.ttft = now }
                last = now
                contentChunks += 1
            }
        }
        sample.e2e = (ContinuousClock.now - sent).seconds
        if sample.outputTokens == 0 { sample.outputTokens = contentChunks }
        sample.ok = contentChunks > 0
        if !sample.ok { sample.error = "no content streamed" }
    } catch {
        sample.error = "\(error)"
    }
    return sample
}

/// At most `limit` requests in flight.
actor ConcurrencyGate {
    private let limit: Int
    private var inFlight = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    func enter() async {
        if inFlight < limit {
            inFlight += 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func leave() {
        if waiters.isEmpty { inFlight -= 1 } else { waiters.removeFirst().resume() }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
