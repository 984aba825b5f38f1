import Foundation
import Testing
@testable import Engine
@testable import OpenAIAPI
@testable import OpenAIServer

@Suite("Engine parts: block manager, prefix hashes, stop strings, sampling")
struct EngineUnitTests {
    @Test("blocks: allocate, release, ref counts; a released cached block is reused by a prefix hit, evicted last-used-first")
    func blockManager() {
        var m = BlockManager(numBlocks: 4, blockSize: 2, prefixCaching: true)
        let tokens = [1, 2, 3, 4, 5]
        let a = m.allocate(3)!
        #expect(m.available == 1)
        let hashes = PrefixHash.blockHashes(tokens, blockSize: 2)
        m.register(block: a[0], hash: hashes[0], parent: PrefixHash.root, tokens: tokens[0..<2])
        m.register(block: a[1], hash: hashes[1], parent: hashes[0], tokens: tokens[2..<4])
        #expect(m.lookup(tokens, maxBlocks: 10) == [a[0], a[1]])
        #expect(m.lookup(tokens, maxBlocks: 1) == [a[0]])
        #expect(m.lookup([1, 2, 9, 9], maxBlocks: 10) == [a[0]])
        #expect(m.allocate(2) == nil)  // all or nothing
        m.release(a)
        #expect(m.available == 4 && m.used == 0)
        // A second user takes the cached blocks back (no longer evictable), shares them with a third.
        let hit = m.lookup(tokens, maxBlocks: 10)
        m.acquire(hit)
        m.acquire(hit)
        #expect(m.available == 2)
        m.release(hit)
        #expect(m.available == 2)
        m.release(hit)
        // Fresh allocations take free blocks first, then evict the least recently released cached block.
        let fresh = m.allocate(3)!
        #expect(!fresh.contains(hit[1]) || !fresh.contains(hit[0]))
        #expect(m.lookup(tokens, maxBlocks: 10).count < 2)
        m.release(fresh)
        m.resetPrefixCache()
        #expect(m.lookup(tokens, maxBlocks: 10).isEmpty && m.available == 4)
    }

    @Test("prefix hashes are a fixed function (the same in every process) and chain over blocks")
    func prefixHash() {
        let h = PrefixHash.blockHashes([1, 2, 3, 4], blockSize: 2)
        #expect(h.count == 2)
        #expect(h[0] == PrefixHash.hash(parent: PrefixHash.root, tokens: [1, 2][...]))
        #expect(h[1] == PrefixHash.hash(parent: h[0], tokens: [3, 4][...]))
        #expect(PrefixHash.blockHashes([9, 2, 3, 4], blockSize: 2)[1] != h[1])
    }

    @Test("stop strings: text is held back while it may start a stop string, which is never emitted")
    func stopMatcher() {
        var m = StopMatcher(stops: ["STOP", "\n\n"])
        #expect(m.push("Hello ").text == "Hello ")
        #expect(m.push("wor").text == "wor")
        #expect(m.push("ld ST") == ("ld ", false))
        #expect(m.push("O") == ("", false))
        #expect(m.push("Pped") == ("", true))
        var n = StopMatcher(stops: ["\n\n"])
        #expect(n.push("a\n") == ("a", false))
        #expect(n.push("b") == ("\nb", false))
        #expect(n.push("\n") == ("", false))
        #expect(n.flush() == "\n")
        var none = StopMatcher(stops: [])
        #expect(none.push("x\n\n") == ("x\n\n", false))
    }

    @Test("seeded sampling is reproducible; greedy is argmax with ties to the lowest id; top-k 1 is greedy")
    func sampling() {
        var logits: [Float] = [0.1, 2, 2, -1, 1.5]
        var params = SamplingParams()
        params.temperature = 0
        var r = RequestRandom(seed: 1)
        var sampler = Sampler()
        #expect(logits.withUnsafeMutableBufferPointer { sampler.sample($0, params: params, prompt: [], output: [], random: &r).token } == 1)
        params.temperature = 1
        params.seed = 42
        func draws(_ seed: UInt64) -> [Int] {
            var random = RequestRandom(seed: seed)
            return (0..<50).map { _ in
                var row = logits
                return row.withUnsafeMutableBufferPointer { sampler.sample($0, params: params, prompt: [], output: [], random: &random).token }
            }
        }
        #expect(draws(42) == draws(42))
        #expect(draws(42) != draws(43))
        #expect(Set(draws(42)).count > 1)
        params.topK = 1
        #expect(Set(draws(7)) == [1])
        // logprobs are of the full distribution and sum to 1.
        params.topK = 0
        params.logprobs = 5
        var random = RequestRandom(seed: 3)
        let s = logits.withUnsafeMutableBufferPointer { sampler.sample($0, params: params, prompt: [], output: [], random: &random) }
        #expect(s.top.count == 5)
        #expect(abs(s.top.map { expf($0.logprob) }.reduce(0, +) - 1) < 1e-5)
    }

    @Test("request ids: 32 lowercase hex digits, zero-padded halves, 10000 of them all different")
    func randomIDs() {
        #expect(RandomID.hex(0) == "0000000000000000")
        #expect(RandomID.hex(0xAB) == "00000000000000ab")
        #expect(RandomID.hex(.max) == "ffffffffffffffff")
        let ids = (0..<10_000).map { _ in RandomID.hex128() }
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy { "0123456789abcdef".contains($0) } })
        #expect(Set(ids).count == ids.count)
    }
}
