import Foundation
import KVStore
import NIOCore
import ServiceKit
import Testing

/// The real `swiftwise kvstore` process: interop with an independent Python client, metrics, crash recovery.
@Suite("swiftwise kvstore process", .timeLimit(.minutes(2)))
struct ProcessTests {
    private func waitUntilHealthy(_ client: KVStoreClient) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if (try? await client.health()) == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("kvstore did not become healthy")
    }

    @Test("an independent Python struct-based client talks to the Swift server")
    func pythonClientInterop() async throws {
        let store = try await TestStore()
        defer { Task { await store.stop() } }
        let script = BuildPaths.packageRoot.appendingPathComponent("Tests/python/lm_wire_client.py").path
        let (status, output) = try await ChildProcess.run("/usr/bin/env", ["python3", script, "\(store.port)"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("lm_wire_client: ok"))
    }

    @Test("kill -9 and restart with the same --data-dir serves what was spilled to disk; /metrics reports it")
    func crashRecovery() async throws {
        let dir = temporaryDirectory()
        // Below the ephemeral range: a store of a test running beside (port 0) cannot take it between the restarts.
        let port = findFreePortBelowEphemeralRange()
        let metricsPort = findFreePortBelowEphemeralRange()
        let args = ["kvstore", "127.0.0.1", "\(port)", "cpu", "--capacity", "1MiB", "--data-dir", dir,
                    "--metrics-port", "\(metricsPort)", "--log-level", "warning"]
        let logFile = dir + "/kvstore.log"
        var child = try ChildProcess.swiftwise(args, log: logFile)
        var client = KVStoreClient(host: "127.0.0.1", port: port)
        try await waitUntilHealthy(client)
        var rng = SeededBytes(seed: 7)
        var values: [String: [UInt8]] = [:]
        for i in 0..<12 {  // 12 × 256 KiB through a 1 MiB memory budget: most spill to disk
            let bytes = rng.bytes(256 << 10)
            values["chunk-\(i)"] = bytes
            try await client.put("chunk-\(i)", object(bytes))
        }
        #expect(try await client.exists("chunk-11"))
        let metrics = try await httpGet(port: metricsPort, path: "/metrics")
        #expect(metrics.contains("kvstore_evictions_total{tier=\"memory\"} 8"), "\(metrics)")
        #expect(metrics.contains("kvstore_entries{tier=\"memory\"} 4"))
        #expect(metrics.contains("kvstore_op_duration_seconds_bucket{op=\"put\""))

        // Let the spills land, then crash without any chance to persist memory.
        try await Task.sleep(for: .milliseconds(500))
        await child.kill()
        await client.shutdown()

        child = try ChildProcess.swiftwise(args, log: logFile)
        client = KVStoreClient(host: "127.0.0.1", port: port)
        try await waitUntilHealthy(client)
        for i in 0..<8 {
            let got = try await client.get("chunk-\(i)")
            #expect(got.map { Array($0.payload.readableBytesView) } == values["chunk-\(i)"], "chunk-\(i) after restart")
        }
        // Graceful stop persists memory too.
        await child.stop(grace: .seconds(30))
        #expect(child.process.terminationStatus == 0, "\(log(of: logFile))")
        await client.shutdown()
        child = try ChildProcess.swiftwise(args, log: logFile)
        client = KVStoreClient(host: "127.0.0.1", port: port)
        try await waitUntilHealthy(client)
        for i in 0..<8 { #expect(try await client.exists("chunk-\(i)")) }
        await child.kill()
        await client.shutdown()
    }

    @Test("bad command lines are refused with a clear message")
    func badFlags() async throws {
        for (args, message) in [
            (["kvstore", "--capacity", "lots"], "capacity"),
            (["kvstore", "127.0.0.1", "8000", "cuda"], "device 'cuda' is not supported"),
            (["kvstore", "--protocol", "v9"], "--protocol must be v1 or v0"),
        ] {
            let (status, output) = try await ChildProcess.run(BuildPaths.swiftwise, args)
            #expect(status != 0)
            #expect(output.contains(message), "\(args): \(output)")
        }
    }

    private func httpGet(port: Int, path: String) async throws -> String {
        let bytes = try await RawConnection.with(port: port) { c in
            try await c.send(Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8))
            return try await c.receiveUntilClosed()
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
