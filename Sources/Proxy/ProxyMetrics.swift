import CoreMetrics
import Metrics
import Synchronization

/// The proxy's instruments (Prometheus names in comments are what `/metrics` shows).
public final class ProxyMetrics: Sendable {
    let factory: any MetricsFactory
    let inFlight: Meter                 // proxy_in_flight
    let prefillSkipped: Counter         // proxy_prefill_skipped_total
    let prefillRetries: Counter         // proxy_prefill_retries_total
    let clientDisconnects: Counter      // proxy_client_disconnects_total
    let prefillTime: Timer              // proxy_prefill_seconds
    let decodeTTFT: Timer               // proxy_decode_ttft_seconds
    /// Labelled instruments, created once per label set rather than once per request.
    private let counters = Mutex<[String: Counter]>([:])
    private let timers = Mutex<[String: Timer]>([:])

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
        counter("proxy_requests_total", [("endpoint", endpoint), ("status", "\(status)")]).increment()
    }

    /// proxy_errors_total{kind}
    func error(_ kind: String) {
        counter("proxy_errors_total", [("kind", kind)]).increment()
    }

    /// proxy_backend_latency_seconds{role,backend}: time to response headers.
    func backendLatency(_ lease: BackendLease, _ duration: Duration) {
        let dims = [("role", lease.role.rawValue), ("backend", lease.url.absoluteString)]
        let key = dims.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        let timer = timers.withLock { cache in
            if let t = cache[key] { return t }
            let t = Timer(label: "proxy_backend_latency_seconds", dimensions: dims, preferredDisplayUnit: .seconds, factory: factory)
            cache[key] = t
            return t
        }
        timer.record(duration: duration)
    }

    private func counter(_ label: String, _ dims: [(String, String)]) -> Counter {
        let key = label + "|" + dims.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        return counters.withLock { cache in
            if let c = cache[key] { return c }
            let c = Counter(label: label, dimensions: dims, factory: factory)
            cache[key] = c
            return c
        }
    }
}
