import ArgumentParser
import KVStore
import Logging
import ServiceKit
import ServiceLifecycle

/// `swiftwise kvstore [HOST] [PORT] [DEVICE]`: the `lm://` KV store, started like LMCache's reference server.
struct KVStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvstore",
        abstract: "Run the lm:// KV store (wire-compatible with LMCache's server).",
        discussion: "Positional form as in the reference: swiftwise kvstore 0.0.0.0 8000 cpu")

    @Argument(help: "Host to bind (reference positional form).") var positionalHost: String?
    @Argument(help: "Port to listen on (reference positional form).") var positionalPort: Int?
    @Argument(help: "Storage device; only 'cpu' (host memory) is supported.") var device: String?

    @Option(help: "Host to bind; binding to all interfaces (0.0.0.0) is an explicit choice.") var host: String?
    @Option(help: "Port to listen on.") var port: Int?
    @Option(help: "Memory budget for stored payloads, e.g. 20GiB.") var capacity = ByteSize(bytes: 20 << 30)
    @Option(help: "Largest object a PUT may carry.") var maxObjectSize = ByteSize(bytes: 1 << 30)
    @Option(help: "Directory for the disk tier: evicted entries spill here and survive restarts.") var dataDir: String?
    @Option(help: "Budget for the disk tier.") var diskCapacity = ByteSize(bytes: 100 << 30)
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics.") var metricsPort: Int?
    @Option(name: .customLong("protocol"), help: "Wire protocol: v1 (8-int header, default) or v0 (2-int header, with LIST).")
    var wireProtocol: String = "v1"
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let h = host, let p = positionalHost, h != p { throw ValidationError("host given twice: '\(p)' and --host '\(h)'") }
        if let a = port, let b = positionalPort, a != b { throw ValidationError("port given twice: \(b) and --port \(a)") }
        if let device, device != "cpu" { throw ValidationError("device '\(device)' is not supported; the store keeps bytes in host memory ('cpu')") }
        guard WireProtocol(rawValue: wireProtocol) != nil else { throw ValidationError("--protocol must be v1 or v0") }
        guard (0...65535).contains(port ?? positionalPort ?? 8000) else { throw ValidationError("port out of range") }
        guard maxObjectSize.bytes > 0, maxObjectSize.bytes <= WireConstants.maxFrameLength else {
            throw ValidationError("--max-object-size must be between 1 byte and \(ByteSize(bytes: WireConstants.maxFrameLength))")
        }
    }

    func run() async throws {
        bootstrapLogging(level: logging.level)
        let logger = Logger(label: "swiftwise.kvstore")
        var config = KVStoreConfiguration()
        config.host = host ?? positionalHost ?? "127.0.0.1"
        config.port = port ?? positionalPort ?? 8000
        config.wireProtocol = WireProtocol(rawValue: wireProtocol)!
        config.limits = StoreLimits(memoryCapacity: capacity.bytes, diskCapacity: diskCapacity.bytes)
        config.maxObjectSize = maxObjectSize.bytes
        config.dataDirectory = dataDir

        let endpoint = MetricsEndpoint()
        let server = try await KVStoreServer.bind(config, metrics: KVStoreMetrics(factory: endpoint.factory), logger: logger)
        logger.info("kvstore listening on lm://\(config.host):\(server.localPort) (protocol \(config.wireProtocol.rawValue), capacity \(capacity), max object \(maxObjectSize)\(dataDir.map { ", disk tier \($0) up to \(diskCapacity)" } ?? ""))")
        var services: [any Service] = [CancellableService { try await server.run() }]
        if let metricsPort {
            services.append(endpoint.makeService(host: config.host, port: metricsPort, logger: logger))
            logger.info("metrics on http://\(config.host):\(metricsPort)/metrics")
        }
        try await runUntilSignalled(services, logger: logger)
    }
}
