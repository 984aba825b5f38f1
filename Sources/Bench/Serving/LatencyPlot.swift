import Foundation

/// An SVG of latency distributions (TTFT, TPOT, ITL, E2E as cumulative curves) for one or more runs, plus a bar of
/// output throughput per run: enough to see a regression at a glance without a plotting library.
public enum LatencyPlot {
    public static func svg(_ runs: [(label: String, samples: [RequestSample], report: ServingReport)]) -> String {
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
        let panels: [(String, ([RequestSample]) -> [Double])] = [
            ("TTFT (ms)", { $0.filter(\.ok).map { $0.ttft * 1000 } }),
            ("TPOT (ms)", { $0.filter(\.ok).compactMap { $0.tpot.map { $0 * 1000 } } }),
            ("ITL (ms)", { $0.filter(\.ok).flatMap { $0.itl.map { $0 * 1000 } } }),
            ("E2E (ms)", { $0.filter(\.ok).map { $0.e2e * 1000 } }),
        ]
        let (w, h, pad) = (360.0, 220.0, 40.0)
        var out = #"<svg xmlns="http://www.w3.org/2000/svg" width="1140" height="520" font-family="sans-serif" font-size="11">"#
        out += #"<rect width="100%" height="100%" fill="white"/>"#
        for (i, panel) in panels.enumerated() {
            let ox = 20 + Double(i % 3) * (w + 20), oy = 20 + Double(i / 3) * (h + 40)
            let series = runs.map { panel.1($0.samples).sorted() }
            let maxX = max(series.compactMap(\.last).max() ?? 1, 1e-6)
            out += #"<text x="\#(ox + pad)" y="\#(oy + 12)" font-weight="bold">\#(panel.0) — share of requests below</text>"#
            out += ##"<rect x="\##(ox + pad)" y="\##(oy + 20)" width="\##(w - pad)" height="\##(h - 50)" fill="none" stroke="#999"/>"##
            out += #"<text x="\#(ox + pad)" y="\#(oy + h - 14)">0</text><text x="\#(ox + w - 40)" y="\#(oy + h - 14)">\#(String(format: "%.0f", maxX))</text>"#
            for (r, values) in series.enumerated() where !values.isEmpty {
                var points: [String] = []
                for (j, v) in values.enumerated() {
                    let x: Double = ox + pad + v / maxX * (w - pad)
                    let share: Double = Double(j + 1) / Double(values.count)
                    let y: Double = oy + 20 + (h - 50) * (1 - share)
                    points.append(String(format: "%.1f,%.1f", x, y))
                }
                out += #"<polyline fill="none" stroke="\#(colors[r % colors.count])" stroke-width="1.5" points="\#(points.joined(separator: " "))"/>"#
            }
        }
        // Throughput bars.
        let ox = 20 + 2 * (w + 20), oy = 20 + h + 40
        let best = max(runs.map(\.report.outputTokenThroughput).max() ?? 1, 1e-6)
        out += #"<text x="\#(ox)" y="\#(oy + 12)" font-weight="bold">output tokens/s</text>"#
        for (r, run) in runs.enumerated() {
            let bw = (w - 60) * run.report.outputTokenThroughput / best
            let y = oy + 24 + Double(r) * 28
            out += #"<rect x="\#(ox)" y="\#(y)" width="\#(bw)" height="18" fill="\#(colors[r % colors.count])"/>"#
            out += #"<text x="\#(ox + 4)" y="\#(y + 13)" fill="white">\#(run.label): \#(String(format: "%.1f", run.report.outputTokenThroughput))</text>"#
        }
        return out + "</svg>\n"
    }
}
