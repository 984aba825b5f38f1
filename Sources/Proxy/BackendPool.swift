import Foundation
import Synchronization

/// A backend as reported by `/health` and `/admin/backends`.
public struct BackendStatus: Sendable, Codable, Equatable {
    public var role: BackendRole
    public var url: String
    public var healthy: Bool
    public var inFlight: Int
    public var consecutiveFailures: Int
    public var requests: Int
    public var failures: Int
}

/// A request's hold on a backend; give it back with `BackendPool.finish`.
public struct BackendLease: Sendable {
    public var role: BackendRole
    public var url: URL
}

/// The prefill and decode nodes, their health and load, and the routing policy that picks among them.
/// Passive ejection: `ejectAfterFailures` consecutive failures mark a node unhealthy until a probe succeeds.
public final class BackendPool: Sendable {
    private struct Node {
        var url: URL
        var healthy = true
        var inFlight = 0
        var consecutiveFailures = 0
        var requests = 0
        var failures = 0
    }

    private struct State {
        var nodes: [BackendRole: [Node]] = [.prefill: [], .decode: []]
        var roundRobin: [BackendRole: Int] = [.prefill: 0, .decode: 0]
        /// prefix_aware: which node last served each prefix block (chained hash), per role.
        var prefixOwners: [BackendRole: PrefixOwners] = [.prefill: PrefixOwners(), .decode: PrefixOwners()]
    }

    public let policy: RoutingPolicy
    private let ejectAfterFailures: Int
    private let saturationMargin: Int
    private let state = Mutex(State())

    public init(prefill: [URL], decode: [URL], policy: RoutingPolicy, ejectAfterFailures: Int = 3, saturationMargin: Int = 8) {
        self.policy = policy
        self.ejectAfterFailures = ejectAfterFailures
        self.saturationMargin = saturationMargin
        state.withLock { s in
            s.nodes[.prefill] = prefill.map { Node(url: $0) }
            s.nodes[.decode] = decode.map { Node(url: $0) }
        }
    }

    /// Picks a healthy node of `role` (skipping `excluding`) and counts the request in flight on it.
    /// `prefix` is the prompt's chained block hashes (see `PrefixBlocks`), used by prefix_aware.
    public func acquire(_ role: BackendRole, prefix: [UInt64] = [], excluding: Set<URL> = []) -> BackendLease? {
        state.withLock { s in
            let candidates = s.nodes[role]!.indices.filter { s.nodes[role]![$0].healthy && !excluding.contains(s.nodes[role]![$0].url) }
            guard !candidates.isEmpty else { return nil }
            let counter = s.roundRobin[role]!
            s.roundRobin[role] = counter &+ 1
            let nodes = s.nodes[role]!
            let chosen: Int
            switch policy {
            case .roundRobin:
                chosen = candidates[counter % candidates.count]
            case .leastLoaded:
                chosen = Self.leastLoaded(candidates, nodes, startingAt: counter)
            case .prefixAware:
                let fallback = Self.leastLoaded(candidates, nodes, startingAt: counter)
                if let first = prefix.first {
                    // The node that served the longest matching prefix; else rendezvous hashing on the first block.
                    let owner = s.prefixOwners[role]!.longestMatch(prefix) { url in candidates.contains { nodes[$0].url == url } }
                    let preferred = owner.flatMap { url in candidates.first { nodes[$0].url == url } }
                        ?? candidates.max { Self.score(first, nodes[$0].url) < Self.score(first, nodes[$1].url) }!
                    chosen = nodes[preferred].inFlight >= nodes[fallback].inFlight + saturationMargin ? fallback : preferred
                    s.prefixOwners[role]!.record(prefix, owner: nodes[chosen].url)
                } else {
                    chosen = fallback
                }
            }
            s.nodes[role]![chosen].inFlight += 1
            s.nodes[role]![chosen].requests += 1
            return BackendLease(role: role, url: nodes[chosen].url)
        }
    }

    /// Ends a request on a node; failures count towards ejection, a success clears them.
    public func finish(_ lease: BackendLease, succeeded: Bool) {
        state.withLock { s in
            guard let i = s.nodes[lease.role]!.firstIndex(where: { $0.url == lease.url }) else { return }
            s.nodes[lease.role]![i].inFlight -= 1
            if succeeded {
                s.nodes[lease.role]![i].consecutiveFailures = 0
            } else {
                s.nodes[lease.role]![i].failures += 1
                s.nodes[lease.role]![i].consecutiveFailures += 1
                if s.nodes[lease.role]![i].consecutiveFailures >= ejectAfterFailures { s.nodes[lease.role]![i].healthy = false }
            }
        }
    }

    /// Records a health probe's outcome: success re-admits a node, failure ejects it.
    public func recordProbe(role: BackendRole, url: URL, healthy: Bool) {
        state.withLock { s in
            guard let i = s.nodes[role]!.firstIndex(where: { $0.url == url }) else { return }
            s.nodes[role]![i].healthy = healthy
            if healthy { s.nodes[role]![i].consecutiveFailures = 0 }
        }
    }

    /// Adds a node (no-op if present); returns whether it was added.
    @discardableResult
    public func add(role: BackendRole, url: URL) -> Bool {
        state.withLock { s in
            guard !s.nodes[role]!.contains(where: { $0.url == url }) else { return false }
            s.nodes[role]!.append(Node(url: url))
            return true
        }
    }

    /// Removes a node; requests in flight on it finish normally. Returns whether it was there.
    @discardableResult
    public func remove(role: BackendRole, url: URL) -> Bool {
        state.withLock { s in
            guard let i = s.nodes[role]!.firstIndex(where: { $0.url == url }) else { return false }
            s.nodes[role]!.remove(at: i)
            return true
        }
    }

    public func statuses() -> [BackendStatus] {
        state.withLock { s in
            BackendRole.allCases.flatMap { role in
                s.nodes[role]!.map {
                    BackendStatus(role: role, url: $0.url.absoluteString, healthy: $0.healthy, inFlight: $0.inFlight,
                                  consecutiveFailures: $0.consecutiveFailures, requests: $0.requests, failures: $0.failures)
                }
            }
        }
    }

    /// Whether the role has any node at all, healthy or not (none configured: a decode-only proxy).
    public func hasNodes(_ role: BackendRole) -> Bool {
        state.withLock { s in !s.nodes[role]!.isEmpty }
    }

    public func hasHealthy(_ role: BackendRole) -> Bool {
        state.withLock { s in s.nodes[role]!.contains { $0.healthy } }
    }

    private static func leastLoaded(_ candidates: [Int], _ nodes: [Node], startingAt counter: Int) -> Int {
        // Rotate the start so ties spread instead of always landing on the first node.
        let rotated = candidates.indices.map { candidates[($0 + counter) % candidates.count] }
        return rotated.min { nodes[$0].inFlight < nodes[$1].inFlight }!
    }

    /// Rendezvous (highest random weight) hashing: stable across processes (FNV-1a, not Swift's seeded Hasher), and
    /// adding or removing a node only moves the keys that node wins or won.
    static func score(_ key: UInt64, _ url: URL) -> UInt64 {
        var h = key ^ 0xcbf2_9ce4_8422_2325
        for byte in url.absoluteString.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        // Final avalanche so similar URLs get unrelated scores.
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        return h
    }
}

/// Which node last served each prefix block, bounded (oldest entries forgotten first).
struct PrefixOwners {
    private var owners: [UInt64: URL] = [:]
    private var order: [UInt64] = []
    private var head = 0
    static let capacity = 65_536

    /// The owner of the longest prefix of `blocks` whose owner passes `usable`.
    func longestMatch(_ blocks: [UInt64], usable: (URL) -> Bool) -> URL? {
        for block in blocks.reversed() {
            if let url = owners[block], usable(url) { return url }
        }
        return nil
    }

    mutating func record(_ blocks: [UInt64], owner: URL) {
        for block in blocks {
            if owners.updateValue(owner, forKey: block) == nil { order.append(block) }
        }
        while order.count - head > Self.capacity {
            owners.removeValue(forKey: order[head])
            head += 1
        }
        if head > Self.capacity {
            order.removeFirst(head)
            head = 0
        }
    }
}

/// A prompt's text cut into fixed-size blocks with chained hashes (block k's hash covers blocks 0...k), the
/// text-level stand-in for the KV store's chained chunk hashes.
public enum PrefixBlocks {
    public static func hashes(of text: String, blockCharacters: Int, maxBlocks: Int = 128) -> [UInt64] {
        var hashes: [UInt64] = []
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var inBlock = 0
        for scalar in text.unicodeScalars {
            var v = scalar.value
            for _ in 0..<4 {
                h = (h ^ UInt64(v & 0xff)) &* 0x100_0000_01b3
                v >>= 8
            }
            inBlock += 1
            if inBlock == blockCharacters {
                hashes.append(h)
                inBlock = 0
                if hashes.count == maxBlocks { return hashes }
            }
        }
        if inBlock > 0 { hashes.append(h) }
        return hashes
    }
}
