import Foundation

/// Which node a backend is.
public enum BackendRole: String, Sendable, Codable, CaseIterable {
    case prefill
    case decode
}

/// How the proxy picks a node of a role.
public enum RoutingPolicy: String, Sendable, CaseIterable {
    /// Each role cycles through its healthy nodes with its own counter.
    case roundRobin = "round_robin"
    /// The healthy node with the fewest requests in flight.
    case leastLoaded = "least_loaded"
    /// The node that most likely holds the prompt's prefix: the one that served the longest matching prefix (blocks
    /// of prompt text with chained hashes), else rendezvous hashing on the first block; the least loaded node when
    /// that one is saturated.
    case prefixAware = "prefix_aware"
}

public struct ProxyConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8000
    public var prefill: [URL] = []
    public var decode: [URL] = []
    public var policy = RoutingPolicy.roundRobin
    /// Clients must send `Authorization: Bearer <apiKey>` when set; also guards the admin endpoints.
    public var apiKey: String?
    public var maxBodyBytes = 32 << 20
    public var connectTimeout: Duration = .seconds(2)
    /// Longest silence tolerated from an upstream (no total deadline: streams may run long).
    public var idleTimeout: Duration = .seconds(600)
    public var healthInterval: Duration = .seconds(5)
    /// Consecutive failures after which a backend is ejected until a health probe succeeds.
    public var ejectAfterFailures = 3
    /// prefix_aware: a node with this many more requests in flight than the least loaded one counts as saturated.
    public var saturationMargin = 8
    /// prefix_aware: characters per prefix block (about one 32-token KV chunk of English text).
    public var prefixBlockCharacters = 128

    public init() {}
}

public enum EndpointError: Error, CustomStringConvertible, Equatable {
    case invalid(String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let entry, let reason): return "invalid backend URL '\(entry)': \(reason)"
        }
    }
}

public enum Endpoints {
    /// Parses a comma-separated list of base URLs (`http://10.0.0.1:8010, http://10.0.0.2:8010/`), trimming blanks
    /// and trailing slashes; any bad entry is an error naming it.
    public static func parse(_ list: String) throws -> [URL] {
        try list.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.map(parseOne)
    }

    public static func parseOne(_ entry: String) throws -> URL {
        var text = entry.trimmingCharacters(in: .whitespaces)
        while text.hasSuffix("/") { text.removeLast() }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw EndpointError.invalid(entry, reason: "not a URL")
        }
        guard scheme == "http" || scheme == "https" else {
            throw EndpointError.invalid(entry, reason: "scheme must be http or https")
        }
        guard let host = components.host, !host.isEmpty else { throw EndpointError.invalid(entry, reason: "no host") }
        if let port = components.port, !(1...65535).contains(port) { throw EndpointError.invalid(entry, reason: "bad port") }
        guard components.query == nil, components.fragment == nil, components.user == nil else {
            throw EndpointError.invalid(entry, reason: "a base URL has no query, fragment or credentials")
        }
        guard let url = components.url else { throw EndpointError.invalid(entry, reason: "not a URL") }
        return url
    }

    /// `KEY=VALUE` lines of a `.env` file (comments, blank lines, `export`, and quotes handled).
    public static func readDotEnv(at path: String) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var values: [String: String] = [:]
        for rawLine in text.split(whereSeparator: \.isNewline) {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("export ") { line.removeFirst(7) }
            guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let q = value.first, (q == "\"" || q == "'"), value.last == q {
                value = String(value.dropFirst().dropLast())
            }
            values[key] = value
        }
        return values
    }

    /// Backends of `role`: flags win when given; else the environment, where the real environment beats `.env`.
    public static func resolve(role: BackendRole, flags: [String], environment: [String: String],
                               dotEnv: [String: String]) throws -> [URL] {
        if !flags.isEmpty { return try flags.flatMap(parse) }
        let name = role == .prefill ? "PREFILL_ENDPOINTS" : "DECODE_ENDPOINTS"
        return try parse(environment[name] ?? dotEnv[name] ?? "")
    }
}
