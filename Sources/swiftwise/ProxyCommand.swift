import ArgumentParser
import Foundation
import Logging
import Proxy
import ServiceKit
import ServiceLifecycle

/// `swiftwise proxy`: the PD router, started like the reference kvproxy.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run the PD proxy: prefill copy with max_tokens=1, then the original to a decode node, streamed back.",
        discussion: """
            Backends come from --prefill/--decode (repeatable; they win when given), else from PREFILL_ENDPOINTS and
            DECODE_ENDPOINTS (comma-separated base URLs) in the environment, else from a .env file in the working directory.
            """)

    @Option(help: "Host to bind.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8000
    @Option(help: "A prefill node's base URL (repeatable).") var prefill: [String] = []
    @Option(help: "A decode node's base URL (repeatable).") var decode: [String] = []
    @Option(help: "Routing policy: round_robin, least_loaded or prefix_aware.") var policy = "round_robin"
    @Option(help: "Require 'Authorization: Bearer KEY' from clients (also guards /admin).") var apiKey: String?
    @Option(help: "Largest request body accepted.") var maxBodySize = ByteSize(bytes: 32 << 20)
    @Option(help: "Seconds to wait for an upstream connection (a refused connection is retried until then).") var connectTimeout: Double = 2
    @Option(help: "Seconds of upstream silence tolerated (no total deadline on streams).") var idleTimeout: Double = 600
    @Option(help: "Seconds between /health probes of each backend.") var healthInterval: Double = 5
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard RoutingPolicy(rawValue: policy) != nil else {
            throw ValidationError("--policy must be one of \(RoutingPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard connectTimeout > 0, idleTimeout > 0, healthInterval > 0 else { throw ValidationError("timeouts and intervals must be positive") }
    }

    func run() async throws {
        bootstrapLogging(level: logging.level)
        let logger = Logger(label: "swiftwise.proxy")
        var config = ProxyConfiguration()
        config.host = host
        config.port = port
        config.policy = RoutingPolicy(rawValue: policy)!
        config.apiKey = apiKey ?? ProcessInfo.processInfo.environment["SWIFTWISE_PROXY_API_KEY"]
        config.maxBodyBytes = maxBodySize.bytes
        config.connectTimeout = .milliseconds(Int(connectTimeout * 1000))
        config.idleTimeout = .milliseconds(Int(idleTimeout * 1000))
        config.healthInterval = .milliseconds(Int(healthInterval * 1000))
        let environment = ProcessInfo.processInfo.environment
        let dotEnv = Endpoints.readDotEnv(at: FileManager.default.currentDirectoryPath + "/.env")
        do {
            config.prefill = try Endpoints.resolve(role: .prefill, flags: prefill, environment: environment, dotEnv: dotEnv)
            config.decode = try Endpoints.resolve(role: .decode, flags: decode, environment: environment, dotEnv: dotEnv)
        } catch {
            throw ValidationError("\(error)")
        }
        guard !config.decode.isEmpty else {
            throw ValidationError("no decode node: set DECODE_ENDPOINTS (environment or .env) or pass --decode URL")
        }
        if config.prefill.isEmpty { logger.warning("no prefill node: every request goes straight to decode, which recomputes the prompt") }
        logger.info("proxy on http://\(host):\(port) policy \(policy); prefill \(config.prefill.map(\.absoluteString)); decode \(config.decode.map(\.absoluteString))")
        let server = ProxyServer(configuration: config, logger: logger)
        try await runUntilSignalled(server.makeServices(), logger: logger)
    }
}
