import Logging
import ServiceLifecycle

/// Adapts a cancellation-driven `run()` to ServiceLifecycle: graceful shutdown (SIGINT/SIGTERM) cancels it.
public struct CancellableService: Service {
    private let body: @Sendable () async throws -> Void

    public init(_ body: @escaping @Sendable () async throws -> Void) {
        self.body = body
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await body() }
        } catch is CancellationError {
            // Shutting down as asked: not a failure.
        }
    }
}

/// Runs services until SIGINT or SIGTERM, then shuts them down in reverse order.
public func runUntilSignalled(_ services: [any Service], logger: Logger) async throws {
    let group = ServiceGroup(configuration: .init(
        services: services.map { .init(service: $0) },
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
    try await group.run()
}

/// Installs the process-wide log handler at the requested level.
public func bootstrapLogging(level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
