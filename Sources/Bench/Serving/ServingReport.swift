import Foundation

/// Mean and percentiles of one latency, in milliseconds.
public struct LatencyStats: Codable, Sendable {
    public var mean: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double

    init(_ seconds: [Double]) {
        let ms = seconds.map { $0 * 1000 }.sorted()
        func pct(_ p: Double) -> Double {
            guard !ms.isEmpty else { return 0 }
            return ms[min(ms.count - 1, Int((p / 100 * Double(ms.count - 1)).rounded()))]
        }
        mean = ms.isEmpty ? 0 : ms.reduce(0, +) / Double(ms.count)
        (p50, p90, p99) = (pct(50), pct(90), pct(99))
    }
}

/// The summary `vllm bench serve` prints, as JSON-encodable numbers.
public struct ServingReport: Codable, Sendable {
    public var label: String
    public var requests: Int
    public var completed: Int
    public var failed: Int
    public var durationSeconds: Double
    public var promptTokens: Int
    public var outputTokens: Int
    public var requestThroughput: Double
    public var outputTokenThroughput: Double
    public var totalTokenThroughput: Double
    public var goodput: Double?
    public var ttftMs: LatencyStats
    public var tpotMs: LatencyStats
    public var itlMs: LatencyStats
    public var e2eMs: LatencyStats
    public var errors: [String]

    /// `goodput`: SLOs in milliseconds by metric name (`ttft`, `tpot`, `e2el`); a request counts when it meets all.
    public init(label: String, samples: [RequestSample], seconds: Double, goodput slo: [String: Double]) {
        let ok = samples.filter(\.ok)
        self.label = label
        requests = samples.count
        completed = ok.count
        failed = samples.count - ok.count
        durationSeconds = seconds
        promptTokens = ok.reduce(0) { $0 + $1.promptTokens }
        outputTokens = ok.reduce(0) { $0 + $1.outputTokens }
        requestThroughput = Double(completed) / seconds
        outputTokenThroughput = Double(outputTokens) / seconds
        totalTokenThroughput = Double(promptTokens + outputTokens) / seconds
        ttftMs = LatencyStats(ok.map(\.ttft))
        tpotMs = LatencyStats(ok.compactMap(\.tpot))
        itlMs = LatencyStats(ok.flatMap(\.itl))
        e2eMs = LatencyStats(ok.map(\.e2e))
        if slo.isEmpty {
            goodput = nil
        } else {
            let good = ok.filter { s in
                (slo["ttft"].map { s.ttft * 1000 <= $0 } ?? true) && (slo["tpot"].map { (s.tpot ?? 0) * 1000 <= $0 } ?? true)
                    && (slo["e2el"].map { s.e2e * 1000 <= $0 } ?? true)
            }
            goodput = Double(good.count) / seconds
        }
        errors = Array(Set(samples.compactMap(\.error))).sorted().prefix(5).map { $0 }
    }

    public var text: String {
        func row(_ name: String, _ s: LatencyStats) -> String {
            String(format: "%-6@ mean %8.1f  p50 %8.1f  p90 %8.1f  p99 %8.1f ms", name as NSString, s.mean, s.p50, s.p90, s.p99)
        }
        var lines = [
            "============ Serving Benchmark Result: \(label) ============",
            "requests: \(completed) completed, \(failed) failed, in \(String(format: "%.2f", durationSeconds)) s",
            "tokens: \(promptTokens) prompt, \(outputTokens) output",
            String(format: "throughput: %.2f req/s, %.1f output tok/s, %.1f total tok/s", requestThroughput, outputTokenThroughput, totalTokenThroughput),
        ]
        if let goodput { lines.append(String(format: "goodput: %.2f req/s", goodput)) }
        lines += [row("TTFT", ttftMs), row("TPOT", tpotMs), row("ITL", itlMs), row("E2E", e2eMs)]
        lines += errors.map { "error: \($0)" }
        return lines.joined(separator: "\n")
    }

    /// Two or more runs side by side, with each column's ratio to the first.
    public static func comparison(_ reports: [ServingReport]) -> String {
        guard let base = reports.first else { return "" }
        let metrics: [(String, (ServingReport) -> Double, Bool)] = [
            ("output tok/s", { $0.outputTokenThroughput }, true), ("req/s", { $0.requestThroughput }, true),
            ("TTFT p50 ms", { $0.ttftMs.p50 }, false), ("TTFT p99 ms", { $0.ttftMs.p99 }, false),
            ("TPOT p50 ms", { $0.tpotMs.p50 }, false), ("ITL p50 ms", { $0.itlMs.p50 }, false),
            ("ITL p99 ms", { $0.itlMs.p99 }, false), ("E2E p50 ms", { $0.e2eMs.p50 }, false),
        ]
        var lines = ["metric".padding(toLength: 14, withPad: " ", startingAt: 0) + reports.map { $0.label.padding(toLength: 22, withPad: " ", startingAt: 0) }.joined()]
        for (name, value, _) in metrics {
            var line = name.padding(toLength: 14, withPad: " ", startingAt: 0)
            for r in reports {
                let v = value(r), b = value(base)
                let cell = r.label == base.label ? String(format: "%.1f", v) : String(format: "%.1f (%.2fx)", v, b > 0 ? v / b : 0)
                line += cell.padding(toLength: 22, withPad: " ", startingAt: 0)
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
