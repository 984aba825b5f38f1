import Foundation
import ServiceKit

/// A `swiftwise` child process (serve, kvstore, proxy) on a free loopback port, stopped when the test ends.
final class Service: @unchecked Sendable {
    let port: Int
    let child: ChildProcess
    let logFile: String

    init(_ name: String, _ arguments: (Int) -> [String], environment: [String: String] = [:], port: Int? = nil) throws {
        let port = port ?? findFreePort()
        self.port = port
        logFile = TestData.temporaryDirectory() + "/\(name).log"
        child = try ChildProcess(name: name, executable: TestData.swiftwise, arguments: arguments(port), logFile: logFile,
                                 environment: environment)
    }

    /// `swiftwise serve` on the default model.
    static func serve(_ name: String, extra: [String] = [], environment: [String: String] = [:]) throws -> Service {
        try Service(name, { port in
            ["serve", TestData.defaultModelPath, "--host", "127.0.0.1", "--port", "\(port)", "--served-model-name", "smol",
             "--max-model-len", "1024", "--kv-cache-memory", "64MiB", "--log-level", "warning"] + extra
        }, environment: environment)
    }

    /// Waits until `GET /health` answers 200 (HTTP services) or the port accepts connections (the KV store).
    func waitUntilReady(http: Bool = true, timeout: Duration = .seconds(90)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !child.process.isRunning { throw ServiceFailed(log: log) }
            if http {
                if let reply = try? await HTTP.get(port, "/health"), reply.status == 200 { return }
            } else if (try? await child.waitUntilListening(host: "127.0.0.1", port: port, timeout: .milliseconds(200))) != nil {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ServiceFailed(log: "not ready in time\n" + log)
    }

    var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    func stop() async { await child.stop(grace: .seconds(5)) }
    func kill() async { await child.kill() }

    deinit { child.stop(grace: .seconds(2)) }

    struct ServiceFailed: Error, CustomStringConvertible {
        var log: String
        var description: String { "service exited: \(log.suffix(2000))" }
    }
}
