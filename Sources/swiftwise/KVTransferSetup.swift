import ArgumentParser
import Engine
import Foundation
import KVTransfer
import Logging
import Metrics
import Models

/// Builds the KV connector of `serve` from `--kv-transfer-config` and the LMCache settings in the environment.
enum KVTransferSetup {
    static func connector(json: String?, modelName: String, config: ModelConfig, metricsFactory: any MetricsFactory,
                          logger: Logger) throws -> (any KVConnector)? {
        guard let json else { return nil }
        do {
            let transfer = try KVTransferConfig(json: json)
            let lmcache = try LMCacheConfig.load(environment: ProcessInfo.processInfo.environment)
            for key in lmcache.unknownKeys { logger.warning("LMCache setting '\(key)' is not known; ignored") }
            if lmcache.remoteURL == nil { logger.warning("LMCache remote_url is not set: KV is shared only through this node's local cache") }
            let connector = try LMCacheConnector(role: transfer.role, config: lmcache, modelName: modelName, layers: config.layers,
                                                 kvDim: config.kvDim, metricsFactory: metricsFactory, logger: logger)
            logger.info("KV transfer: \(transfer.role.rawValue), chunk_size \(lmcache.chunkSize), serde \(lmcache.remoteSerde.rawValue), remote \(lmcache.remoteURL.map { "lm://\($0.host):\($0.port)" } ?? "none")")
            return connector
        } catch let error as LMCacheConfig.Invalid {
            throw ValidationError(error.description)
        }
    }
}
