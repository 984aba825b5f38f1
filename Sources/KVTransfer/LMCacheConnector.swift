import Engine
import Foundation
import KVStore
import Logging
import Metrics
import Synchronization

/// The LMCache connector (`"kv_connector":"LMCacheConnector"`) over an `lm://` KV store plus a local hot cache.
/// Producer: PUTs the chunks the store lacks, then an EXIST on the same connection as a barrier (one connection
/// is answered in order), so decode never races a PUT. Consumer: GETs chunks in order until the first miss.
/// Store failures never fail a request: they are misses, logged once per outage.
public final class LMCacheConnector: KVConnector {
    public let role: KVTransferConfig.Role
    public let config: LMCacheConfig
    public let keys: ChunkKeys
    let layers: Int
    let kvDim: Int
    let client: KVStoreClient?
    let hot: HotCache?
    let serde: any KVSerde
    let metrics: KVTransferMetrics
    let logger: Logger
    private let outage = Mutex(false)

    public var isProducer: Bool { role != .consumer }
    public var isConsumer: Bool { role != .producer }

    public init(role: KVTransferConfig.Role, config: LMCacheConfig, modelName: String, layers: Int, kvDim: Int,
                metricsFactory: any MetricsFactory, logger: Logger) throws {
        guard !modelName.contains("@") else {
            throw LMCacheConfig.Invalid(description: "model name '\(modelName)' contains '@', which LMCache keys cannot hold")
        }
        keys = ChunkKeys(modelName: modelName, chunkSize: config.chunkSize)
        guard keys.key(String(repeating: "0", count: 64)).utf8.count <= 150 else {
            throw LMCacheConfig.Invalid(description: "model name '\(modelName)' is too long for a 150-byte KV store key")
        }
        switch config.remoteSerde {
        case .naive: serde = NaiveSerde()
        case .kivi: serde = KiviSerde()
        case .cachegen: throw LMCacheConfig.Invalid(description: "remote_serde: cachegen is not implemented; use naive or kivi")
        }
        if config.localDisk != nil { logger.warning("LMCache local_disk is not implemented yet: chunks are kept in memory and the remote store only") }
        self.role = role
        self.config = config
        self.layers = layers
        self.kvDim = kvDim
        self.logger = logger
        if let remote = config.remoteURL {
            var c = KVStoreClientConfiguration(host: remote.host, port: remote.port)
            c.connectTimeout = .seconds(1)
            c.requestTimeout = .seconds(5)
            client = KVStoreClient(c)
        } else {
            client = nil
        }
        hot = config.localCPU && config.maxLocalCPUBytes > 0 ? HotCache(capacity: config.maxLocalCPUBytes) : nil
        metrics = KVTransferMetrics(factory: metricsFactory)
    }

    // MARK: consumer

    public func load(prompt: [Int], locallyCached: Int) async -> ExternalKV? {
        // Demo-era rule: a prompt shorter than one chunk is recomputed.
        guard prompt.count >= config.chunkSize else { return nil }
        let start = ContinuousClock.now
        let hashes = keys.hashes(prompt)
        let first = locallyCached / config.chunkSize
        guard first < hashes.count else { return nil }
        var objects: [(Range<Int>, StoredObject)] = []
        for k in first..<hashes.count {
            let key = keys.key(hashes[k])
            let object: StoredObject
            if let cached = hot?.get(key) {
                object = cached
            } else if let fetched = await remoteGet(key) {
                object = fetched
                hot?.put(key, fetched)
            } else {
                metrics.chunksMissed.increment()
                break
            }
            objects.append((keys.range(chunk: k, of: prompt.count), object))
        }
        guard let firstRange = objects.first?.0 else { return nil }
        let total = objects.last!.0.upperBound - firstRange.lowerBound
        var data = [Float](repeating: 0, count: 2 * layers * total * kvDim)
        var loaded = 0
        data.withUnsafeMutableBufferPointer { buffer in
            for (range, object) in objects {
                let view = ChunkView(base: buffer.baseAddress!, layers: layers, kvDim: kvDim, bufferTokens: total,
                                     start: range.lowerBound - firstRange.lowerBound, count: range.count)
                guard serde.decode(object, into: view) else {
                    metrics.chunksMismatched.increment()
                    logger.warning("KV chunk for tokens \(range) has the wrong shape or format for this model; recomputing from there")
                    break
                }
                metrics.chunksFetched.increment()
                metrics.bytesFetched.increment(by: Int64(object.payload.readableBytes))
                loaded = range.upperBound - firstRange.lowerBound
            }
        }
        guard loaded > 0 else { return nil }
        if loaded < total { data = Self.truncate(data, layers: layers, kvDim: kvDim, from: total, to: loaded) }
        metrics.fetchTime.record(duration: ContinuousClock.now - start)
        return ExternalKV(range: firstRange.lowerBound..<firstRange.lowerBound + loaded, data: data)
    }

    private func remoteGet(_ key: String) async -> StoredObject? {
        guard let client else { return nil }
        do {
            let object = try await client.get(key)
            recovered()
            return object
        } catch {
            failed(error)
            return nil
        }
    }

    static func truncate(_ data: [Float], layers: Int, kvDim: Int, from total: Int, to kept: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(2 * layers * kept * kvDim)
        for row in 0..<2 * layers {
            out.append(contentsOf: data[row * total * kvDim..<(row * total + kept) * kvDim])
        }
        return out
    }

    // MARK: producer

    public func store(prompt: [Int], kv: ExternalKV) async {
        precondition(kv.range == 0..<prompt.count, "store expects the whole prompt's KV")
        // Decode recomputes a prompt shorter than one chunk, so it is not stored.
        guard prompt.count >= config.chunkSize else { return }
        let start = ContinuousClock.now
        let hashes = keys.hashes(prompt)
        var lastPut: String?
        var data = kv.data
        for (k, hash) in hashes.enumerated() {
            let key = keys.key(hash)
            // Without a remote store the hot cache is the store. With one, the remote is asked every time: a
            // restarted store has lost what this node stored before.
            if client == nil, hot?.contains(key) == true {
                metrics.chunksSkipped.increment()
                continue
            }
            let range = keys.range(chunk: k, of: prompt.count)
            let object = data.withUnsafeMutableBufferPointer { buffer in
                serde.encode(ChunkView(base: buffer.baseAddress!, layers: layers, kvDim: kvDim, bufferTokens: prompt.count,
                                       start: range.lowerBound, count: range.count))
            }
            guard let client else {
                hot?.put(key, object)
                continue
            }
            do {
                if try await client.exists(key) {
                    metrics.chunksSkipped.increment()
                    continue
                }
                try await client.put(key, object)
                hot?.put(key, object)
                lastPut = key
                metrics.chunksStored.increment()
                metrics.bytesStored.increment(by: Int64(object.payload.readableBytes))
                recovered()
            } catch {
                failed(error)
                return
            }
        }
        // Barrier: the store answers in order, so once this EXIST returns every PUT before it is stored.
        if let lastPut, let client {
            do {
                _ = try await client.exists(lastPut)
            } catch {
                failed(error)
            }
        }
        metrics.storeTime.record(duration: ContinuousClock.now - start)
    }

    // MARK: outages: one warning when the store becomes unreachable, one note when it is back.

    private func failed(_ error: any Error) {
        metrics.storeErrors.increment()
        let first = outage.withLock { down -> Bool in
            defer { down = true }
            return !down
        }
        if first { logger.warning("KV store \(config.remoteURL.map { "lm://\($0.host):\($0.port)" } ?? "") unavailable (\(error)); recomputing until it is back") }
    }

    private func recovered() {
        let was = outage.withLock { down -> Bool in
            defer { down = false }
            return down
        }
        if was { logger.notice("KV store reachable again") }
    }
}

struct KVTransferMetrics: Sendable {
    let chunksStored, chunksSkipped, chunksFetched, chunksMissed, chunksMismatched, bytesStored, bytesFetched, storeErrors: Counter
    let fetchTime, storeTime: Timer

    init(factory: any MetricsFactory) {
        func counter(_ name: String) -> Counter { Counter(label: "swiftwise:kv_transfer_" + name, factory: factory) }
        chunksStored = counter("chunks_stored_total")
        chunksSkipped = counter("chunks_skipped_total")
        chunksFetched = counter("chunks_fetched_total")
        chunksMissed = counter("chunks_missed_total")
        chunksMismatched = counter("chunks_mismatched_total")
        bytesStored = counter("bytes_stored_total")
        bytesFetched = counter("bytes_fetched_total")
        storeErrors = counter("store_errors_total")
        fetchTime = Timer(label: "swiftwise:kv_transfer_fetch_seconds", preferredDisplayUnit: .seconds, factory: factory)
        storeTime = Timer(label: "swiftwise:kv_transfer_store_seconds", preferredDisplayUnit: .seconds, factory: factory)
    }
}
