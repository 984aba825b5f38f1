import Foundation

/// The side-by-side table: each row is one (op, size, connections), ours against the peer, ratio of throughputs.
public func formatKVStoreBench(_ phases: [KVBenchPhase], ours: String = "swiftwise", peer: String = "redis") -> String {
    var lines: [String] = []
    let head = "op   value    conns | \(ours.padding(9)) MB/s  p50 ms  p99 ms | \(peer.padding(9)) MB/s  p50 ms  p99 ms | ratio"
    lines.append(head)
    lines.append(String(repeating: "-", count: head.count))
    var ratios: [Double] = []
    for phase in phases where phase.target == ours {
        guard let other = phases.first(where: {
            $0.target == peer && $0.op == phase.op && $0.valueBytes == phase.valueBytes && $0.connections == phase.connections
        }) else { continue }
        let ratio = phase.megabytesPerSecond / other.megabytesPerSecond
        ratios.append(ratio)
        let size = phase.valueBytes >= 1 << 20 ? "\(phase.valueBytes >> 20) MiB" : "\(phase.valueBytes >> 10) KiB"
        lines.append(
            "\(phase.op.padding(4)) \(size.padding(8)) \(String(phase.connections).padding(5, left: true)) | "
                + "\(fmt(phase.megabytesPerSecond, 14)) \(fmt(phase.p50Milliseconds, 7, 3)) \(fmt(phase.p99Milliseconds, 7, 3)) | "
                + "\(fmt(other.megabytesPerSecond, 14)) \(fmt(other.p50Milliseconds, 7, 3)) \(fmt(other.p99Milliseconds, 7, 3)) | "
                + "\(fmt(ratio, 5, 2))x")
    }
    if let worst = ratios.min() {
        let geo = exp(ratios.map { log($0) }.reduce(0, +) / Double(ratios.count))
        lines.append("worst ratio \(fmt(worst, 0, 2))x, geometric mean \(fmt(geo, 0, 2))x (target: >= 1.00x on every row)")
    }
    return lines.joined(separator: "\n")
}

private func fmt(_ value: Double, _ width: Int, _ decimals: Int = 1) -> String {
    String(format: "%.\(decimals)f", value).padding(width, left: true)
}

extension String {
    func padding(_ width: Int, left: Bool = false) -> String {
        let pad = String(repeating: " ", count: max(0, width - count))
        return left ? pad + self : self + pad
    }
}
