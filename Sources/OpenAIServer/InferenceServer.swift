import Engine
import Foundation
import Hummingbird
import Logging
import NIOCore
import OpenAIAPI
import ServiceKit
import ServiceLifecycle

/// `swiftwise serve`: the OpenAI-compatible HTTP API in front of one engine.
public final class InferenceServer: Sendable {
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port = 8000
        public var apiKey: String?
        public var maxBodyBytes = 32 << 20

        public init() {}
    }

    public let configuration: Configuration
    public let served: ServedModel
    public let engine: EngineCore
    let connector: (any KVConnector)?
    let metricsEndpoint: MetricsEndpoint
    let logger: Logger

    public init(configuration: Configuration, served: ServedModel, engine: EngineCore, connector: (any KVConnector)?,
                metricsEndpoint: MetricsEndpoint, logger: Logger) {
        self.configuration = configuration
        self.served = served
        self.engine = engine
        self.connector = connector
        self.metricsEndpoint = metricsEndpoint
        self.logger = logger
    }

    /// The HTTP server and the engine thread as services; `onListening` gets the bound port.
    public func makeServices(onListening: @escaping @Sendable (Int) -> Void = { _ in }) -> [any Service] {
        let engine = self.engine
        let engineService = CancellableService {
            engine.start()
            try? await Task.sleep(for: .seconds(86400 * 365 * 100))
            engine.shutdown()
        }
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "swiftwise"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        return [engineService, app]
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        let service = CompletionService(served: served, engine: engine, connector: connector)
        router.post("/v1/chat/completions") { request, _ in
            await self.handle(request) { json throws(OpenAIError) in
                try await service.respond(CompletionRequest(kind: .chat, json: json, served: self.served))
            }
        }
        router.post("/v1/completions") { request, _ in
            await self.handle(request) { json throws(OpenAIError) in
                try await service.respond(CompletionRequest(kind: .completion, json: json, served: self.served))
            }
        }
        router.post("/tokenize") { request, _ in
            await self.handle(request, authorized: false) { json throws(OpenAIError) in try self.tokenize(json) }
        }
        router.post("/detokenize") { request, _ in
            await self.handle(request, authorized: false) { json throws(OpenAIError) in try self.detokenize(json) }
        }
        router.get("/v1/models") { request, _ -> Response in
            if let failure = self.authorize(request) { return Self.error(failure) }
            let models: [JSONValue] = self.served.names.map { name in
                .object(["id": .string(name), "object": .string("model"), "created": .number(Double(Int(Date().timeIntervalSince1970))),
                         "owned_by": .string("swiftwise"), "root": .string(self.served.primaryName),
                         "max_model_len": .number(Double(self.served.maxModelLen))])
            }
            return CompletionService.json(.object(["object": .string("list"), "data": .array(models)]))
        }
        router.get("/health") { _, _ in Response(status: .ok) }
        router.get("/version") { _, _ in CompletionService.json(.object(["version": .string("swiftwise-0.1")])) }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metricsEndpoint.render())))
        }
        return router
    }

    /// Body limits, JSON parsing, API key and error shaping around an endpoint.
    private func handle(_ request: Request, authorized: Bool = true,
                        _ body: (JSONValue) async throws(OpenAIError) -> Response) async -> Response {
        if authorized, let failure = authorize(request) { return Self.error(failure) }
        var request = request
        let bytes: ByteBuffer
        do {
            bytes = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch {
            return Self.error(OpenAIError(status: 413, message: "request body exceeds \(ByteSize(bytes: configuration.maxBodyBytes))"))
        }
        let json: JSONValue
        do {
            json = try JSONDecoder().decode(JSONValue.self, from: Data(bytes.readableBytesView))
        } catch {
            return Self.error(OpenAIError(status: 400, message: "request body is not valid JSON"))
        }
        guard case .object = json else { return Self.error(OpenAIError(status: 400, message: "request body must be a JSON object")) }
        do {
            return try await body(json)
        } catch {
            if error.status >= 500 { logger.warning("request failed: \(error.error.message)") }
            return Self.error(error)
        }
    }

    func authorize(_ request: Request) -> OpenAIError? {
        guard let key = configuration.apiKey else { return nil }
        guard request.headers[.authorization] == "Bearer \(key)" else { return OpenAIError(status: 401, message: "invalid or missing API key") }
        return nil
    }

    static func error(_ error: OpenAIError) -> Response {
        Response(status: .init(code: error.status), headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: error.jsonBytes)))
    }

    /// vLLM's `/tokenize`: `{"prompt"}` or `{"messages"}` → `{"tokens", "count", "max_model_len"}`.
    private func tokenize(_ json: JSONValue) throws(OpenAIError) -> Response {
        let fields = Fields(json)
        guard served.answers(to: try fields.string("model")) else { throw OpenAIError(status: 404, message: "unknown model", param: "model") }
        let tokens: [Int]
        if let messages = json["messages"]?.arrayValue {
            let text = try served.renderChat(messages, tools: json["tools"], addGenerationPrompt: try fields.bool("add_generation_prompt") ?? true, extra: [:])
            tokens = served.tokenizer.encode(text, parseSpecial: true, addSpecial: try fields.bool("add_special_tokens") ?? false)
        } else if let prompt = try fields.string("prompt") {
            tokens = served.tokenizer.encode(prompt, parseSpecial: true, addSpecial: try fields.bool("add_special_tokens") ?? true)
        } else {
            throw OpenAIError(status: 400, message: "'prompt' (a string) or 'messages' is required")
        }
        return CompletionService.json(.object(["tokens": .array(tokens.map { .number(Double($0)) }), "count": .number(Double(tokens.count)),
                                               "max_model_len": .number(Double(served.maxModelLen))]))
    }

    /// vLLM's `/detokenize`: `{"tokens"}` → `{"prompt"}`.
    private func detokenize(_ json: JSONValue) throws(OpenAIError) -> Response {
        let vocab = served.config.vocabSize
        guard let list = json["tokens"]?.arrayValue else { throw OpenAIError(status: 400, message: "'tokens' must be a list of integers", param: "tokens") }
        var ids: [Int] = []
        for v in list {
            guard case .number(let x) = v, x.rounded() == x, x >= 0, x < Double(vocab) else {
                throw OpenAIError(status: 400, message: "'tokens' must hold integers in 0..<\(vocab)", param: "tokens")
            }
            ids.append(Int(x))
        }
        return CompletionService.json(.object(["prompt": .string(served.tokenizer.decode(ids))]))
    }
}
