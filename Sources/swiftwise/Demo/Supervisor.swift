import Foundation
import Logging
import ServiceKit
import Synchronization

/// Runs the demo's children: starts each with its role as the log prefix, restarts one that dies, and stops all
/// (SIGTERM, then SIGKILL after a grace period) when asked.
final class Supervisor: Sendable {
    struct Spec: Sendable {
        var role: String
        var port: Int
        var arguments: [String]
        var environment: [String: String] = [:]
        var http = true
    }

    private let executable: String
    private let children = Mutex<[String: ChildProcess]>([:])
    private let stopping = Mutex(false)
    let logger: Logger

    init(executable: String, logger: Logger) {
        self.executable = executable
        self.logger = logger
    }

    func start(_ spec: Spec) throws {
        var environment = spec.environment
        environment[ParentWatch.environmentKey] = String(getpid())
        let child = try ChildProcess(name: spec.role, executable: executable, arguments: spec.arguments,
                                     output: .prefixed(spec.role), environment: environment)
        children.withLock { $0[spec.role] = child }
    }

    var pids: [Int32] { children.withLock { $0.values.map(\.process.processIdentifier) } }

    /// Restarts children that exited while the demo was not stopping; returns after `stop`.
    func watch(_ specs: [Spec]) async {
        while !stopping.withLock({ $0 }) {
            try? await Task.sleep(for: .seconds(1))
            for spec in specs {
                let child = children.withLock { $0[spec.role] }
                guard let child, !child.process.isRunning, !stopping.withLock({ $0 }) else { continue }
                logger.warning("\(spec.role) exited with status \(child.process.terminationStatus); restarting it")
                do {
                    try start(spec)
                } catch {
                    logger.error("\(spec.role) could not be restarted: \(error)")
                }
            }
        }
    }

    /// Stops every child, the proxy first and the KV store last.
    func stopAll(order: [String]) {
        stopping.withLock { $0 = true }
        let all = children.withLock { $0 }
        let ordered = order.compactMap { all[$0] } + all.filter { !order.contains($0.key) }.map(\.value)
        for child in ordered where child.process.isRunning { child.process.terminate() }
        for child in ordered { child.stop(grace: .seconds(10)) }
    }

    /// Waits until `GET /health` answers 200 (HTTP services) or the port accepts connections (the KV store).
    func waitUntilReady(_ spec: Spec, timeout: Duration = .seconds(180)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let child = children.withLock({ $0[spec.role] }), child.process.isRunning else {
                throw DemoError("\(spec.role) exited before it was ready")
            }
            if spec.http {
                if await DemoHTTP.healthy(port: spec.port) { return }
            } else if (try? await child.waitUntilListening(host: "127.0.0.1", port: spec.port, timeout: .milliseconds(100))) != nil {
                return
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw DemoError("\(spec.role) was not ready after \(timeout)")
    }
}

struct DemoError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
