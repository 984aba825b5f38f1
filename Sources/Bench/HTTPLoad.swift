import AsyncHTTPClient
import Foundation
import NIOCore
import ServiceKit

/// One load run against an HTTP endpoint: time to first body byte and requests per second.
public struct HTTPLoadResult: Codable, Sendable {
    public var target: String
    public var concurrency: Int
    public var requests: Int
    public var failures: Int
    public var seconds: Double
    public var requestsPerSecond: Double
    public var ttfbP50Milliseconds: Double
    public var ttfbP99Milliseconds: Double
    /// CPU time the target's own processes used per request during the run (ProcessTable), when measured.
    public var cpuMicrosecondsPerRequest: Double?
}

/// Sends `requests` POSTs of `body` to `url` from `concurrency` concurrent streams, each reading its whole response.
public func runHTTPLoad(target: String, url: String, body: String, concurrency: Int, requests: Int,
                        client: HTTPClient) async -> HTTPLoadResult {
    let perWorker = max(1, requests / concurrency)
    let start = ContinuousClock.now
    let samples = await withTaskGroup(of: ([Double], Int).self) { group in
        for _ in 0..<concurrency {
            group.addTask {
                var ttfb: [Double] = []
                var failures = 0
                ttfb.reserveCapacity(perWorker)
                for _ in 0..<perWorker {
                    var request = HTTPClientRequest(url: url)
                    request.method = .POST
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(string: body))
                    let sent = ContinuousClock.now
                    do {
                        let response = try await client.execute(request, timeout: .seconds(60))
                        var first = true
                        for try await _ in response.body where first {
                            ttfb.append((ContinuousClock.now - sent).seconds)
                            first = false
                        }
                        if response.status != .ok || first { failures += 1 }
                    } catch {
                        failures += 1
                    }
                }
                return (ttfb, failures)
            }
        }
        var all: [Double] = []
        var failures = 0
        for await (ttfb, f) in group {
            all += ttfb
            failures += f
        }
        return (all.sorted(), failures)
    }
    let seconds = (ContinuousClock.now - start).seconds
    let done = perWorker * concurrency
    return HTTPLoadResult(
        target: target, concurrency: concurrency, requests: done, failures: samples.1, seconds: seconds,
        requestsPerSecond: Double(done - samples.1) / seconds,
        ttfbP50Milliseconds: percentileOf(samples.0, 0.50) * 1e3, ttfbP99Milliseconds: percentileOf(samples.0, 0.99) * 1e3)
}

func percentileOf(_ sorted: [Double], _ q: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, max(0, Int((Double(sorted.count) * q).rounded(.up)) - 1))]
}

/// The table: each target's TTFB and throughput, with added p50 latency and throughput ratio against a baseline.
public func formatHTTPLoad(_ results: [HTTPLoadResult], direct: String = "direct", peer: String = "nginx") -> String {
    var lines = ["target                    conc   req/s   ttfb p50 ms  p99 ms  added p50 ms  vs \(peer) req/s  failures  CPU us/req"]
    lines.append(String(repeating: "-", count: lines[0].count))
    for r in results {
        let base = results.first { $0.target == direct && $0.concurrency == r.concurrency }
        let nginx = results.first { $0.target == peer && $0.concurrency == r.concurrency }
        let added = base.map { String(format: "%.3f", r.ttfbP50Milliseconds - $0.ttfbP50Milliseconds) } ?? "-"
        let ratio = nginx.map { String(format: "%.2fx", r.requestsPerSecond / $0.requestsPerSecond) } ?? "-"
        lines.append(r.target.padding(24) + String(r.concurrency).padding(6, left: true)
            + String(format: "%8.0f", r.requestsPerSecond) + String(format: "%13.3f", r.ttfbP50Milliseconds)
            + String(format: "%8.3f", r.ttfbP99Milliseconds) + added.padding(14, left: true) + ratio.padding(17, left: true)
            + String(r.failures).padding(10, left: true)
            + (r.cpuMicrosecondsPerRequest.map { String(format: "%.0f", $0) } ?? "-").padding(12, left: true))
    }
    return lines.joined(separator: "\n")
}
