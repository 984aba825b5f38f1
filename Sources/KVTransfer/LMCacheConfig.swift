import Foundation
import Yams

/// LMCache's settings, from the YAML file named by `LMCACHE_CONFIG_FILE` or else from `LMCACHE_<KEY>` variables,
/// with LMCache's defaults. Unknown keys are reported (never silently ignored); bad values are errors.
public struct LMCacheConfig: Sendable, Equatable {
    public enum Serde: String, Sendable { case naive, kivi, cachegen }

    public var chunkSize = 256
    public var localCPU = true
    /// Bytes (the YAML value is in GB).
    public var maxLocalCPUBytes = 5 * 1_000_000_000
    public var localDisk: String?
    public var maxLocalDiskBytes = 0
    public var remoteURL: (host: String, port: Int)?
    public var remoteSerde = Serde.naive
    public var saveDecodeCache = false
    /// Keys present but not understood (logged as warnings by the caller).
    public var unknownKeys: [String] = []

    public static func == (a: LMCacheConfig, b: LMCacheConfig) -> Bool {
        a.chunkSize == b.chunkSize && a.localCPU == b.localCPU && a.maxLocalCPUBytes == b.maxLocalCPUBytes
            && a.localDisk == b.localDisk && a.remoteURL?.host == b.remoteURL?.host && a.remoteURL?.port == b.remoteURL?.port
            && a.remoteSerde == b.remoteSerde && a.saveDecodeCache == b.saveDecodeCache
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    static let knownKeys: Set<String> = ["chunk_size", "local_cpu", "max_local_cpu_size", "local_disk", "max_local_disk_size",
                                         "remote_url", "remote_serde", "save_decode_cache",
                                         // Set by the reference demo, ignored by its own engine: accepted.
                                         "local_device", "pipelined_backend"]

    public init() {}

    /// From the environment: `LMCACHE_CONFIG_FILE` (YAML) if set, else `LMCACHE_*` variables.
    public static func load(environment: [String: String]) throws -> LMCacheConfig {
        if let path = environment["LMCACHE_CONFIG_FILE"], !path.isEmpty {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw Invalid(description: "LMCACHE_CONFIG_FILE \(path): cannot read (\(error.localizedDescription))")
            }
            return try LMCacheConfig(yaml: text, source: path)
        }
        var values: [String: String] = [:]
        for (name, value) in environment where name.hasPrefix("LMCACHE_") && name != "LMCACHE_CONFIG_FILE" {
            values[String(name.dropFirst("LMCACHE_".count)).lowercased()] = value
        }
        return try LMCacheConfig(values: values, source: "LMCACHE_* environment")
    }

    public init(yaml: String, source: String) throws {
        let parsed: Any?
        do {
            parsed = try Yams.load(yaml: yaml)
        } catch {
            throw Invalid(description: "\(source): not valid YAML: \(error)")
        }
        guard let map = parsed as? [String: Any] else {
            if parsed == nil { self.init(); return }
            throw Invalid(description: "\(source): expected a mapping of settings")
        }
        var values: [String: String] = [:]
        for (key, value) in map {
            if value is NSNull { continue }
            values[key] = "\(value)"
        }
        try self.init(values: values, source: source)
    }

    init(values: [String: String], source: String) throws {
        func fail(_ key: String, _ why: String) -> Invalid { Invalid(description: "\(source): \(key): \(why)") }
        func bool(_ key: String, _ v: String) throws -> Bool {
            switch v.lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default: throw fail(key, "expected true or false, got '\(v)'")
            }
        }
        func gigabytes(_ key: String, _ v: String) throws -> Int {
            guard let g = Double(v), g >= 0, g < 1e6 else { throw fail(key, "expected a size in GB, got '\(v)'") }
            return Int(g * 1e9)
        }
        for (key, v) in values.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "chunk_size":
                guard let n = Int(v), n > 0, n <= 1 << 16 else { throw fail(key, "expected a positive integer, got '\(v)'") }
                chunkSize = n
            case "local_cpu": localCPU = try bool(key, v)
            case "max_local_cpu_size": maxLocalCPUBytes = try gigabytes(key, v)
            case "local_disk":
                guard v.hasPrefix("file://") else { throw fail(key, "expected file:///path/, got '\(v)'") }
                localDisk = String(v.dropFirst("file://".count))
            case "max_local_disk_size": maxLocalDiskBytes = try gigabytes(key, v)
            case "remote_url": remoteURL = try Self.parseRemote(v, fail: { fail(key, $0) })
            case "remote_serde":
                guard let s = Serde(rawValue: v) else { throw fail(key, "expected naive, kivi or cachegen, got '\(v)'") }
                remoteSerde = s
            case "save_decode_cache": saveDecodeCache = try bool(key, v)
            case "local_device", "pipelined_backend": break
            default: unknownKeys.append(key)
            }
        }
    }

    /// `lm://host:port`.
    static func parseRemote(_ v: String, fail: (String) -> Invalid) throws -> (host: String, port: Int) {
        guard v.hasPrefix("lm://") else {
            throw fail(v.hasPrefix("redis://") ? "redis:// stores are not supported yet (lm:// only)" : "expected lm://host:port, got '\(v)'")
        }
        let rest = v.dropFirst("lm://".count).split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port),
              colon > rest.startIndex else {
            throw fail("expected lm://host:port, got '\(v)'")
        }
        return (String(rest[..<colon]), port)
    }
}

/// vLLM's `--kv-transfer-config` JSON, of which the LMCache connector reads `kv_connector` and `kv_role`.
public struct KVTransferConfig: Sendable, Equatable {
    public enum Role: String, Sendable { case producer = "kv_producer", consumer = "kv_consumer", both = "kv_both" }
    public var connector: String
    public var role: Role

    public init(json: String) throws {
        guard let data = json.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LMCacheConfig.Invalid(description: "--kv-transfer-config: not a JSON object: \(json)")
        }
        guard let connector = object["kv_connector"] as? String else {
            throw LMCacheConfig.Invalid(description: "--kv-transfer-config: 'kv_connector' (a string) is required")
        }
        guard ["LMCacheConnector", "LMCacheConnectorV1"].contains(connector) else {
            throw LMCacheConfig.Invalid(description: "--kv-transfer-config: kv_connector '\(connector)' is not supported (LMCacheConnector)")
        }
        guard let roleText = object["kv_role"] as? String, let role = Role(rawValue: roleText) else {
            throw LMCacheConfig.Invalid(description: "--kv-transfer-config: kv_role must be kv_producer, kv_consumer or kv_both")
        }
        self.connector = connector
        self.role = role
    }
}
