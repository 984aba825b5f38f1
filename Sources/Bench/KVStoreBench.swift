import Foundation
import ServiceKit

/// A store under test: a name and a way to open connections to it.
public struct KVBenchTarget: Sendable {
    public var name: String
    let connect: @Sendable () throws -> any KVBenchConnection

    public static func lm(host: String, port: Int) -> KVBenchTarget {
        KVBenchTarget(name: "swiftwise") { try LMBenchConnection(host: host, port: port) }
    }

    public static func redis(host: String, port: Int) -> KVBenchTarget {
        KVBenchTarget(name: "redis") { try RedisBenchConnection(host: host, port: port) }
    }
}

public struct KVBenchConfig: Sendable {
    public var valueSizes = [64 << 10, 1 << 20, 10 << 20]
    public var concurrencies = [1, 16]
    /// Payload bytes each phase moves (at least `minOpsPerConnection` ops per connection).
    public var bytesPerPhase = 256 << 20
    public var minOpsPerConnection = 4
    /// Each phase runs this many times; the run with the median throughput is reported (a 2-core machine is noisy).
    public var repeats = 3

    public init() {}

    func opsPerConnection(size: Int, concurrency: Int) -> Int {
        max(minOpsPerConnection, bytesPerPhase / size / concurrency)
    }
}

/// One measured phase: every connection doing `ops` PUTs (or GETs) of one value size.
public struct KVBenchPhase: Codable, Sendable {
    public var target: String
    public var op: String
    public var valueBytes: Int
    public var connections: Int
    public var operations: Int
    public var seconds: Double
    public var megabytesPerSecond: Double
    public var p50Milliseconds: Double
    public var p99Milliseconds: Double
}

/// Runs PUT-then-GET phases for every (size, concurrency) row against each target in turn, same load, same client.
public func runKVStoreBench(targets: [KVBenchTarget], config: KVBenchConfig,
                            progress: (String) -> Void) throws -> [KVBenchPhase] {
    var results: [KVBenchPhase] = []
    for size in config.valueSizes {
        for concurrency in config.concurrencies {
            for target in targets {
                let ops = config.opsPerConnection(size: size, concurrency: concurrency)
                progress("\(target.name): \(ops * concurrency) × \(size >> 10) KiB over \(concurrency) connection(s)")
                let connections = try (0..<concurrency).map { _ in try target.connect() }
                var runs: [String: [KVBenchPhase]] = [:]
                for run in 0..<max(1, config.repeats) {
                    let prefix = "bench-\(size)-\(concurrency)-\(run)"
                    for op in ["put", "get"] {
                        runs[op, default: []].append(try runPhase(target: target.name, op: op, size: size, ops: ops,
                                                                  connections: connections, keyPrefix: prefix))
                    }
                }
                for op in ["put", "get"] {
                    let sorted = runs[op]!.sorted { $0.megabytesPerSecond < $1.megabytesPerSecond }
                    results.append(sorted[sorted.count / 2])
                }
            }
        }
    }
    return results
}

private func runPhase(target: String, op: String, size: Int, ops: Int, connections: [any KVBenchConnection],
                      keyPrefix: String) throws -> KVBenchPhase {
    let workers = connections.enumerated().map { index, connection in
        PhaseWorker(connection: connection, index: index, op: op, size: size, ops: ops, keyPrefix: keyPrefix)
    }
    let done = DispatchGroup()
    let start = ContinuousClock.now
    for worker in workers {
        done.enter()
        let thread = Thread { worker.run(); done.leave() }
        thread.stackSize = 1 << 20
        thread.start()
    }
    done.wait()
    let seconds = (ContinuousClock.now - start).seconds
    if let failure = workers.compactMap(\.failure).first { throw failure }
    let latencies = workers.flatMap(\.latencies).sorted()
    let total = Double(size * ops * connections.count)
    return KVBenchPhase(
        target: target, op: op, valueBytes: size, connections: connections.count, operations: latencies.count,
        seconds: seconds, megabytesPerSecond: total / seconds / 1e6,
        p50Milliseconds: percentileOf(latencies, 0.50) * 1e3, p99Milliseconds: percentileOf(latencies, 0.99) * 1e3)
}

/// One client thread's share of a phase; its payload buffer is allocated once and reused for every op.
private final class PhaseWorker: @unchecked Sendable {
    let connection: any KVBenchConnection
    let index: Int, op: String, size: Int, ops: Int, keyPrefix: String
    var latencies: [Double] = []
    var failure: (any Error)?

    init(connection: any KVBenchConnection, index: Int, op: String, size: Int, ops: Int, keyPrefix: String) {
        (self.connection, self.index, self.op, self.size, self.ops, self.keyPrefix) = (connection, index, op, size, ops, keyPrefix)
        latencies.reserveCapacity(ops)
    }

    func run() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        defer { buffer.deallocate() }
        do {
            for i in 0..<ops {
                let key = "\(keyPrefix)-\(index)-\(i)"
                let stamp = UInt64(index << 32 | i)
                let t0 = ContinuousClock.now
                if op == "put" {
                    fill(buffer, stamp: stamp)
                    let t1 = ContinuousClock.now  // filling is not the store's time
                    try connection.put(key: key, payload: UnsafeRawBufferPointer(buffer))
                    latencies.append((ContinuousClock.now - t1).seconds)
                } else {
                    let n = try connection.get(key: key, into: buffer)
                    latencies.append((ContinuousClock.now - t0).seconds)
                    guard n == size, buffer.load(as: UInt64.self) == stamp,
                          buffer.loadUnaligned(fromByteOffset: size - 8, as: UInt64.self) == stamp
                    else { throw BenchError.protocolError("GET \(key) returned wrong bytes") }
                }
            }
        } catch {
            failure = error
        }
    }

    /// Stamps the first and last 8 bytes so a GET can be checked for returning this value, not another.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer, stamp: UInt64) {
        buffer.storeBytes(of: stamp, as: UInt64.self)
        buffer.storeBytes(of: stamp, toByteOffset: size - 8, as: UInt64.self)
    }
}

