import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// Probes every backend's `/health` periodically; a 200 re-admits a node, anything else ejects it.
struct HealthChecker: Sendable {
    let pool: BackendPool
    let client: HTTPClient
    let interval: Duration
    let logger: Logger

    /// Probes every `interval`, the first one an interval after start: until then backends are presumed healthy
    /// and passive ejection covers failures.
    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard !Task.isCancelled else { return }
            await probeAll()
        }
    }

    func probeAll() async {
        await withTaskGroup(of: Void.self) { group in
            for status in pool.statuses() {
                group.addTask { await probe(status) }
            }
        }
    }

    private func probe(_ status: BackendStatus) async {
        guard let url = URL(string: status.url) else { return }
        var healthy = false
        do {
            let response = try await client.execute(HTTPClientRequest(url: status.url + "/health"), timeout: .seconds(3))
            healthy = response.status == .ok
            _ = try? await response.body.collect(upTo: 64 << 10)
        } catch {
            healthy = false
        }
        if healthy != status.healthy {
            logger.notice("\(status.role.rawValue) node \(status.url) is \(healthy ? "healthy again" : "unhealthy")")
        }
        pool.recordProbe(role: status.role, url: url, healthy: healthy)
    }
}
