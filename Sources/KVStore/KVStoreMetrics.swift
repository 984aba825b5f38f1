import CoreMetrics
import Metrics

/// The store's Prometheus-facing instruments. Created from an explicit factory so that several stores in one process
/// (tests) keep separate registries.
public final class KVStoreMetrics: Sendable {
    let hits: Counter
    let misses: Counter
    let evictions: Counter
    let dropped: Counter
    let connections: Counter
    let openConnections: Meter
    let rejectedFrames: Counter
    let bytesIn: Counter
    let bytesOut: Counter
    let memoryEntries: Meter
    let memoryBytes: Meter
    let diskEntries: Meter
    let diskBytes: Meter
    private let latency: [StoreCommand: Timer]

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        func counter(_ name: String, _ dims: [(String, String)] = []) -> Counter {
            Counter(label: "kvstore_" + name, dimensions: dims, factory: factory)
        }
        func gauge(_ name: String, _ dims: [(String, String)] = []) -> Meter {
            Meter(label: "kvstore_" + name, dimensions: dims, factory: factory)
        }
        hits = counter("hits_total")
        misses = counter("misses_total")
        evictions = counter("evictions_total", [("tier", "memory")])
        dropped = counter("dropped_total")
        connections = counter("connections_total")
        openConnections = gauge("open_connections")
        rejectedFrames = counter("rejected_frames_total")
        bytesIn = counter("bytes_in_total")
        bytesOut = counter("bytes_out_total")
        memoryEntries = gauge("entries", [("tier", "memory")])
        memoryBytes = gauge("bytes", [("tier", "memory")])
        diskEntries = gauge("entries", [("tier", "disk")])
        diskBytes = gauge("bytes", [("tier", "disk")])
        var latency: [StoreCommand: Timer] = [:]
        for command in [StoreCommand.put, .get, .exist, .list, .health] {
            latency[command] = Timer(label: "kvstore_op_duration_seconds", dimensions: [("op", "\(command)")],
                                     preferredDisplayUnit: .seconds, factory: factory)
        }
        self.latency = latency
    }

    func recordLatency(_ command: StoreCommand, since start: ContinuousClock.Instant) {
        latency[command]?.record(duration: ContinuousClock.now - start)
    }
}
