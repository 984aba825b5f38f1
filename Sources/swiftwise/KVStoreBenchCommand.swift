import ArgumentParser
import Bench
import Foundation
import ServiceKit

/// `swiftwise bench kvstore`: our store against redis-server, same values, same concurrency, same client.
struct KVStoreBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvstore",
        abstract: "Benchmark the KV store against redis-server (PUT then GET; MB/s, p50/p99, ratio).",
        discussion: "Starts `swiftwise kvstore` and `redis-server` on free loopback ports unless --lm / --redis name running ones.")

    @Option(help: "Value sizes, comma-separated.") var sizes = "64KiB,1MiB,10MiB"
    @Option(help: "Connection counts, comma-separated.") var concurrency = "1,16"
    @Option(help: "Payload bytes per phase (each phase does at least 4 ops per connection).") var bytesPerPhase = ByteSize(bytes: 256 << 20)
    @Option(help: "Runs per phase; the median-throughput run is reported.") var repeats = 3
    @Option(help: "Use a running lm:// store at HOST:PORT instead of starting one.") var lm: String?
    @Option(help: "Use a running redis at HOST:PORT instead of starting redis-server.") var redis: String?
    @Option(help: "Write the results as JSON to this file.") var json: String?

    func run() throws {
        ChildProcess.stopAllOnSignal()  // Ctrl-C or SIGTERM stops the stores it started too
        var config = KVBenchConfig()
        config.valueSizes = try sizes.split(separator: ",").map { try ByteSize(parsing: String($0)).bytes }
        config.concurrencies = concurrency.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        config.bytesPerPhase = bytesPerPhase.bytes
        config.repeats = repeats
        guard !config.valueSizes.isEmpty, !config.concurrencies.isEmpty, config.concurrencies.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--sizes and --concurrency need at least one positive value each")
        }
        let largest = config.valueSizes.max()!

        var children: [ChildProcess] = []
        defer { children.forEach { $0.stop() } }
        let (lmHost, lmPort) = try lm.map(parseHostPort) ?? {
            let port = findFreePort()
            let child = try ChildProcess(
                name: "swiftwise kvstore", executable: ChildProcess.currentExecutable,
                arguments: ["kvstore", "127.0.0.1", "\(port)", "cpu", "--capacity", "16GiB",
                            "--max-object-size", "\(max(largest, 1 << 20))", "--log-level", "warning"])
            children.append(child)
            try child.waitUntilListening(host: "127.0.0.1", port: port)
            return ("127.0.0.1", port)
        }()
        let (redisHost, redisPort) = try redis.map(parseHostPort) ?? {
            guard let redisServer = ChildProcess.which("redis-server") else {
                throw BenchError.setup("redis-server not found: install it (apt-get install redis-server) or pass --redis HOST:PORT")
            }
            let port = findFreePort()
            let child = try ChildProcess(
                name: "redis-server", executable: redisServer,
                arguments: ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                            "--protected-mode", "no", "--io-threads", "1"])
            children.append(child)
            try child.waitUntilListening(host: "127.0.0.1", port: port)
            return ("127.0.0.1", port)
        }()

        print("swiftwise lm://\(lmHost):\(lmPort) vs redis \(redisHost):\(redisPort); \(bytesPerPhase) per phase, median of \(repeats) runs")
        let phases = try runKVStoreBench(
            targets: [.lm(host: lmHost, port: lmPort), .redis(host: redisHost, port: redisPort)],
            config: config) { line in
            FileHandle.standardError.write(Data("  \(line)\n".utf8))
        }
        print(formatKVStoreBench(phases))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(phases).write(to: URL(fileURLWithPath: json))
            print("results written to \(json)")
        }
    }

    private func parseHostPort(_ text: String) throws -> (String, Int) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("expected HOST:PORT, got '\(text)'") }
        return (String(parts[0]), port)
    }
}
