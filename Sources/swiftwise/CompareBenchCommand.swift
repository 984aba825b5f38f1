import ArgumentParser
import Bench
import Foundation
import Logging
import ServiceKit

/// `swiftwise bench compare`: the same workload against a colocated `serve` and a 1P1D topology (store + prefill +
/// decode + proxy) on this machine, one after the other, side by side.
struct CompareBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Same workload: colocated serve vs PD (1 prefill + 1 decode + store + proxy), side by side.")

    @Option(help: "A GGUF model (default: the one scripts/setup.sh fetched).") var model: String?
    @Option(help: "Kernel threads per engine node (default: every core).") var threads: Int?
    @Option(help: "LMCache chunk_size for the PD run.") var chunkSize = 64
    @Option(help: "Write both reports as JSON here.") var json: String?
    @Option(help: "Write an SVG plot of both runs here.") var plot: String?
    @OptionGroup var workload: WorkloadOptions

    func run() async throws {
        bootstrapLogging(level: .warning)
        let logger = Logger(label: "swiftwise.bench.compare")
        let modelPath = model ?? DemoCommand.defaultModel
        let maxLen = max(1024, workload.inputLen * 2 + workload.outputLen + 64)
        func serveArgs(_ port: Int) -> [String] {
            var a = ["serve", modelPath, "--host", "127.0.0.1", "--port", "\(port)", "--served-model-name", "m",
                     "--max-model-len", "\(maxLen)", "--kv-cache-memory", "512MiB", "--log-level", "warning"]
            if let threads { a += ["--threads", "\(threads)"] }
            return a
        }
        var runs: [(String, [RequestSample], ServingReport)] = []

        // Colocated: one node does prefill and decode.
        do {
            let port = findFreePort()
            let supervisor = Supervisor(executable: ChildProcess.currentExecutable, logger: logger)
            let spec = Supervisor.Spec(role: "colocated", port: port, arguments: serveArgs(port))
            try supervisor.start(spec)
            defer { supervisor.stopAll(order: []) }
            try await supervisor.waitUntilReady(spec)
            let (report, samples) = try await workload.run(label: "colocated", url: "http://127.0.0.1:\(port)", model: "m")
            runs.append(("colocated", samples, report))
        }
        // PD: store + prefill + decode + proxy.
        do {
            let work = NSTemporaryDirectory() + "swiftwise-compare-\(getpid())"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let storePort = findFreePort(), prefillPort = findFreePort(), decodePort = findFreePort(), proxyPort = findFreePort()
            try "chunk_size: \(chunkSize)\nremote_url: \"lm://127.0.0.1:\(storePort)\"\nremote_serde: \"naive\"\nmax_local_cpu_size: 1\n"
                .write(toFile: work + "/lmcache.yaml", atomically: true, encoding: .utf8)
            let env = ["LMCACHE_CONFIG_FILE": work + "/lmcache.yaml"]
            let specs: [Supervisor.Spec] = [
                .init(role: "kvstore", port: storePort, arguments: ["kvstore", "127.0.0.1", "\(storePort)", "cpu", "--capacity", "4GiB", "--log-level", "warning"], http: false),
                .init(role: "prefill", port: prefillPort, arguments: serveArgs(prefillPort) + ["--kv-transfer-config", #"{"kv_connector":"LMCacheConnector","kv_role":"kv_producer"}"#], environment: env),
                .init(role: "decode", port: decodePort, arguments: serveArgs(decodePort) + ["--kv-transfer-config", #"{"kv_connector":"LMCacheConnector","kv_role":"kv_consumer"}"#], environment: env),
                .init(role: "proxy", port: proxyPort, arguments: ["proxy", "--host", "127.0.0.1", "--port", "\(proxyPort)", "--prefill", "http://127.0.0.1:\(prefillPort)",
                                                                  "--decode", "http://127.0.0.1:\(decodePort)", "--log-level", "warning"]),
            ]
            let supervisor = Supervisor(executable: ChildProcess.currentExecutable, logger: logger)
            defer { supervisor.stopAll(order: ["proxy", "decode", "prefill", "kvstore"]) }
            for spec in specs { try supervisor.start(spec) }
            for spec in specs { try await supervisor.waitUntilReady(spec) }
            let (report, samples) = try await workload.run(label: "PD 1P1D", url: "http://127.0.0.1:\(proxyPort)", model: "m")
            runs.append(("PD 1P1D", samples, report))
        }
        for run in runs { print(run.2.text + "\n") }
        print(ServingReport.comparison(runs.map(\.2)))
        try ServeBenchCommand.write(json: json, plot: plot, runs: runs)
    }
}
