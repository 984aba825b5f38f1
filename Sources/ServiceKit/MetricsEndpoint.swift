import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// A Prometheus registry and the HTTP server that exposes it as `GET /metrics` for services whose main protocol is
/// not HTTP (the KV store). HTTP services mount `render()` on their own router instead.
public struct MetricsEndpoint: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // From a KV store GET (tens of microseconds) to a long generation (a minute).
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
            .seconds(10), .seconds(30), .seconds(60),
        ]
        self.factory = factory
    }

    /// The Prometheus text exposition of every metric registered so far.
    public func render() -> String {
        registry.emitToString()
    }

    /// An HTTP service answering `GET /metrics` on host:port, for a `ServiceGroup`.
    public func makeService(host: String, port: Int, logger: Logger) -> some Service {
        let router = Router()
        let registry = self.registry
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port)), logger: logger)
    }
}
