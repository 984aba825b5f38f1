import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import OpenAIAPI
import ServiceKit
import ServiceLifecycle

/// The proxy: routes, backend pool, health checker and metrics. `makeApplication` is used by the CLI and by tests.
public final class ProxyServer: Sendable {
    public let configuration: ProxyConfiguration
    public let pool: BackendPool
    public let metricsEndpoint: MetricsEndpoint
    let client: HTTPClient
    let metrics: ProxyMetrics
    let logger: Logger

    public init(configuration: ProxyConfiguration, metricsEndpoint: MetricsEndpoint = MetricsEndpoint(),
                logger: Logger = Logger(label: "swiftwise.proxy")) {
        self.configuration = configuration
        self.metricsEndpoint = metricsEndpoint
        self.logger = logger
        pool = BackendPool(prefill: configuration.prefill, decode: configuration.decode, policy: configuration.policy,
                           ejectAfterFailures: configuration.ejectAfterFailures,
                           saturationMargin: configuration.saturationMargin)
        metrics = ProxyMetrics(factory: metricsEndpoint.factory)
        var clientConfig = HTTPClient.Configuration()
        clientConfig.timeout = .init(connect: TimeAmount(configuration.connectTimeout), read: TimeAmount(configuration.idleTimeout))
        clientConfig.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1024)
        clientConfig.decompression = .disabled
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfig)
    }

    /// The HTTP application plus the health checker, as services for a `ServiceGroup`.
    /// `onListening` receives the bound port (useful with port 0).
    public func makeServices(onListening: @escaping @Sendable (Int) -> Void = { _ in }) -> [any Service] {
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "swiftwise-proxy"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        let checker = HealthChecker(pool: pool, client: client, interval: configuration.healthInterval, logger: logger)
        let client = self.client
        // A ServiceGroup stops services in reverse order: the HTTP server first (drain), the upstream client last.
        let clientKeeper = CancellableService {
            try? await Task.sleep(for: .seconds(86400 * 365 * 100))
            try? await client.shutdown()
        }
        return [clientKeeper, CancellableService { await checker.run() }, app]
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        let relay = PDRouter(pool: pool, client: client, metrics: metrics, configuration: configuration, logger: logger)
        for (path, endpoint) in [("/v1/chat/completions", "chat"), ("/v1/completions", "completions")] {
            router.post(RouterPath(path)) { request, context in
                await self.handleCompletion(request, context: context, path: path, endpoint: endpoint, relay: relay)
            }
        }
        router.get("/v1/models") { request, _ in await self.models(request) }
        router.get("/health") { _, _ in self.health() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metricsEndpoint.render())))
        }
        AdminRoutes(server: self).register(on: router)
        return router
    }

    private func handleCompletion(_ request: Request, context: BasicRequestContext, path: String, endpoint: String,
                                  relay: PDRouter) async -> Response {
        metrics.inFlight.increment()
        defer { metrics.inFlight.decrement() }
        let requestId = request.headers[UpstreamHeaders.requestIdName] ?? "swiftwise-\(RandomID.hex128())"
        let response = await completionResponse(request, path: path, relay: relay, requestId: requestId)
        metrics.request(endpoint: endpoint, status: Int(response.status.code))
        return response
    }

    private func completionResponse(_ request: Request, path: String, relay: PDRouter, requestId: String) async -> Response {
        if let failure = authorize(request) { return PDRouter.errorResponse(failure, requestId: requestId) }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch {
            metrics.error("body_too_large")
            return PDRouter.errorResponse(
                OpenAIError(status: 413, message: "request body exceeds \(ByteSize(bytes: configuration.maxBodyBytes))"),
                requestId: requestId)
        }
        // With no prefill node (a decode-only proxy, nginx's job) and no prefix routing, nothing reads the body: it is
        // only checked to be a JSON object, and forwarded as it came. Otherwise it is decoded for the prefill copy.
        let readsBody = pool.hasNodes(.prefill) || configuration.policy == .prefixAware
        let json: JSONValue?
        do {
            let data = Data(body.readableBytesView)
            if readsBody {
                let value = try JSONDecoder().decode(JSONValue.self, from: data)
                guard case .object = value else { throw OpenAIError(status: 400, message: "body must be a JSON object") }
                json = value
            } else {
                _ = try JSONDecoder().decode(JSONObjectShape.self, from: data)
                json = nil
            }
        } catch {
            metrics.error("bad_request")
            return PDRouter.errorResponse(OpenAIError(status: 400, message: "request body is not a JSON object: \(error)"),
                                          requestId: requestId)
        }
        return await relay.complete(path: path, request: request, body: body, json: json, requestId: requestId)
    }

    /// `Authorization: Bearer KEY` when the proxy has an API key.
    func authorize(_ request: Request) -> OpenAIError? {
        guard let key = configuration.apiKey else { return nil }
        guard request.headers[.authorization] == "Bearer \(key)" else {
            metrics.error("unauthorized")
            return OpenAIError(status: 401, message: "invalid or missing API key")
        }
        return nil
    }

    private func models(_ request: Request) async -> Response {
        if let failure = authorize(request) { return PDRouter.errorResponse(failure, requestId: nil) }
        var tried: Set<URL> = []
        while let lease = pool.acquire(.decode, excluding: tried) {
            tried.insert(lease.url)
            var upstream = HTTPClientRequest(url: lease.url.absoluteString + "/v1/models")
            if let auth = request.headers[.authorization] { upstream.headers.add(name: "Authorization", value: auth) }
            do {
                let response = try await client.execute(upstream, timeout: .seconds(30))
                let body = try await response.body.collect(upTo: 16 << 20)
                pool.finish(lease, succeeded: response.status.code < 500)
                return Response(status: .init(code: Int(response.status.code)), headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: body))
            } catch {
                pool.finish(lease, succeeded: false)
            }
        }
        return PDRouter.errorResponse(OpenAIError(status: 503, message: "no healthy decode node"), requestId: nil)
    }

    private func health() -> Response {
        let statuses = pool.statuses()
        let ready = statuses.contains { $0.role == .decode && $0.healthy }
        struct Health: Encodable {
            var status: String
            var policy: String
            var backends: [BackendStatus]
        }
        let body = Health(status: ready ? "ok" : "unavailable", policy: pool.policy.rawValue, backends: statuses)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let bytes = (try? encoder.encode(body)) ?? Data()
        return Response(status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
