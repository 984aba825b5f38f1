import Engine
import Foundation
import Hummingbird
import NIOCore
import OpenAIAPI

/// Serves one validated completion request: KV fetch (consumer), one engine request per choice, and the answer
/// as one JSON body or as a server-sent event stream.
struct CompletionService: Sendable {
    let served: ServedModel
    let engine: EngineCore
    let connector: (any KVConnector)?

    func respond(_ request: CompletionRequest) async throws(OpenAIError) -> Response {
        let isChat = request.kind == .chat
        let id = (isChat ? "chatcmpl-" : "cmpl-") + RandomID.hex128()
        let created = Int(Date().timeIntervalSince1970)
        // External KV first (consumer): one fetch per distinct prompt, skipping what local blocks already hold.
        var externals: [[Int]: ExternalKV] = [:]
        if let connector, connector.isConsumer {
            for prompt in Set(request.prompts) {
                if let kv = await connector.load(prompt: prompt, locallyCached: engine.cachedPrefixTokens(prompt)) {
                    externals[prompt] = kv
                }
            }
        }
        var runners: [ChoiceRunner] = []
        for (p, prompt) in request.prompts.enumerated() {
            for c in 0..<request.n {
                let index = p * request.n + c
                var params = request.params
                if let seed = params.seed, c > 0 { params.seed = seed &+ UInt64(c) }
                let engineRequest = EngineRequest(
                    id: "\(id)-\(index)", prompt: prompt, params: params, external: externals[prompt],
                    exportPromptKV: c == 0 && connector?.isProducer == true)
                runners.append(ChoiceRunner(index: index, requestID: id, prompt: prompt, request: engineRequest,
                                            stops: request.stops, served: served, engine: engine, connector: connector))
            }
        }
        var streams: [AsyncStream<EngineEvent>] = []
        do {
            for runner in runners { streams.append(try runner.submit()) }
        } catch {
            for runner in runners { engine.abort(runner.request.id) }
            throw error
        }
        var template = ResponseFormat(id: id, created: created, model: request.model ?? served.primaryName, isChat: isChat,
                                      tokenizer: served.tokenizer, promptTokens: request.prompts.reduce(0) { $0 + $1.count })
        template.tokensAsIDs = request.tokensAsIDs
        let format = template
        let jobs = Array(zip(runners, streams))
        if request.stream {
            let includeUsage = request.includeUsage
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                            body: ResponseBody { writer in
                try await Self.stream(jobs, format: format, includeUsage: includeUsage, writer: &writer)
            })
        }
        var choices = [ChoiceAccumulator](repeating: ChoiceAccumulator(), count: jobs.count)
        do {
            let all = try await Self.collect(jobs)
            for delta in all { choices[delta.index].add(delta) }
        } catch {
            throw OpenAIError(status: 500, message: "generation failed: \(error)")
        }
        return Self.json(format.final(choices))
    }

    private static func collect(_ jobs: [(ChoiceRunner, AsyncStream<EngineEvent>)]) async throws -> [ChoiceDelta] {
        try await withThrowingTaskGroup(of: [ChoiceDelta].self) { group in
            for (runner, events) in jobs {
                group.addTask {
                    let box = DeltaBox()
                    try await runner.run(events) { box.append($0) }
                    return box.values
                }
            }
            var all: [ChoiceDelta] = []
            for try await part in group { all += part }
            return all
        }
    }

    private static func stream(_ jobs: [(ChoiceRunner, AsyncStream<EngineEvent>)], format: ResponseFormat, includeUsage: Bool,
                               writer: inout any ResponseBodyWriter) async throws {
        let (deltas, sink) = AsyncStream.makeStream(of: ChoiceDelta.self)
        let producers = Task {
            await withTaskGroup(of: Void.self) { group in
                for (runner, events) in jobs {
                    group.addTask { try? await runner.run(events) { sink.yield($0) } }
                }
            }
            sink.finish()
        }
        defer { producers.cancel() }
        var started = Set<Int>()
        var usage = UsageTotals()
        for await delta in deltas {
            if format.isChat, !started.contains(delta.index) {
                started.insert(delta.index)
                try await writer.write(sse(format.chunk(index: delta.index, role: true)))
            }
            if let u = delta.usage { usage.add(u) }
            if !delta.text.isEmpty || delta.finishReason != nil || !delta.tokens.isEmpty {
                try await writer.write(sse(format.chunk(delta)))
            }
        }
        if includeUsage { try await writer.write(sse(format.usageChunk(usage))) }
        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
        try await writer.finish(nil)
    }

    static func sse(_ value: JSONValue) -> ByteBuffer {
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(encode(value))
        buffer.writeString("\n\n")
        return buffer
    }

    static func encode(_ value: JSONValue) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: encode(value))))
    }
}

/// Collects deltas from a child task (appended from one task only).
private final class DeltaBox: @unchecked Sendable {
    var values: [ChoiceDelta] = []
    func append(_ d: ChoiceDelta) { values.append(d) }
}

struct ChoiceAccumulator {
    var text = ""
    var tokens: [SampledToken] = []
    var finishReason: String?
    var usage: EngineUsage?

    mutating func add(_ d: ChoiceDelta) {
        text += d.text
        tokens += d.tokens
        if let f = d.finishReason { finishReason = f }
        if let u = d.usage { usage = u }
    }
}

struct UsageTotals {
    var completion = 0
    var cached = 0

    mutating func add(_ u: EngineUsage) {
        completion += u.completionTokens
        cached += u.localCachedTokens + u.externalTokens
    }
}
