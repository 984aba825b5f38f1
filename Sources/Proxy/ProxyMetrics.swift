import CoreMetrics
import Metrics

/// The proxy's instruments (Prometheus names in comments are what `/metrics` shows).
public final class ProxyMetrics: Sendable {
    let factory: any MetricsFactory
    let inFlight: Meter                 // proxy_in_flight
    let prefillSkipped: Counter         // proxy_prefill_skipped_total
    let prefillRetries: Counter         // proxy_prefill_retries_total
    let clientDisconnects: Counter      // proxy_client_disconnects_total
    let prefillTime: Timer              // proxy_prefill_seconds
    let decodeTTFT: Timer               // proxy_decode_ttft_seconds

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        inFlight = Meter(label: "proxy_in_flight", factory: factory)
        prefillSkipped = Counter(label: "proxy_prefill_skipped_total", factory: factory)
        prefillRetries = Counter(label: "proxy_prefill_retries_total", factory: factory)
        clientDisconnects = Counter(label: "proxy_client_disconnects_total", factory: factory)
        prefillTime = Timer(label: "proxy_prefill_seconds", preferredDisplayUnit: .seconds, factory: factory)
        decodeTTFT = Timer(label: "proxy_decode_ttft_seconds", preferredDisplayUnit: .seconds, factory: factory)
    }

    /// proxy_requests_total{endpoint,status}
    func request(endpoint: String, status: Int) {
        Counter(label: "proxy_requests_total", dimensions: [("endpoint", endpoint), ("status", "\(status)")], factory: factory)
            .increment()
    }

    /// proxy_errors_total{kind}
    func error(_ kind: String) {
        Counter(label: "proxy_errors_total", dimensions: [("kind", kind)], factory: factory).increment()
    }

    /// proxy_backend_latency_seconds{role,backend}: time to response headers.
    func backendLatency(_ lease: BackendLease, _ duration: Duration) {
        Timer(label: "proxy_backend_latency_seconds",
              dimensions: [("role", lease.role.rawValue), ("backend", lease.url.absoluteString)],
              preferredDisplayUnit: .seconds, factory: factory).record(duration: duration)
    }
}
