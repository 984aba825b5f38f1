import Metrics
import Foundation
import Logging
import Models

/// The engine: one thread runs the step loop and owns every piece of mutable state (sequences, blocks, the KV
/// cache). Requests arrive through `submit`, which returns the request's event stream; cancelling the stream's
/// consumer aborts the request and frees its blocks.
public final class EngineCore: @unchecked Sendable {
    public let backend: any ForwardBackend
    public let config: EngineConfig
    let logger: Logger
    let metrics: EngineMetrics

    // Shared with submitters; guarded by `condition`.
    private let condition = NSCondition()
    private var inbox: [Sequence] = []
    private var aborts: [String] = []
    private var pending = 0
    private var stopping = false
    private var thread: Thread?

    // Owned by the step loop thread.
    private var blocks: BlockManager
    private var waiting: [Sequence] = []
    private var running: [Sequence] = []
    private let sharedHashes: SharedHashes
    /// One sampler (scratch memory) per thread that samples a step's rows.
    var samplers = [Sampler()]

    /// `backend` must hold `config.numBlocks` blocks of `config.blockSize` tokens.
    public init(backend: any ForwardBackend, config: EngineConfig, metricsFactory: any MetricsFactory, logger: Logger) {
        self.backend = backend
        self.config = config
        self.logger = logger
        blocks = BlockManager(numBlocks: config.numBlocks, blockSize: config.blockSize, prefixCaching: config.enablePrefixCaching)
        sharedHashes = blocks.sharedHashes
        metrics = EngineMetrics(factory: metricsFactory)
    }

    public func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "swiftwise-engine"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    /// Stops the loop after the current step; unfinished requests end with `abort`.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    /// Queues a request. Its events end with `.finished`; dropping the stream aborts it.
    public func submit(_ request: EngineRequest) throws(EngineError) -> AsyncStream<EngineEvent> {
        guard request.prompt.count < config.maxModelLen else {
            throw .promptTooLong(tokens: request.prompt.count, limit: config.maxModelLen)
        }
        let (stream, continuation) = AsyncStream.makeStream(of: EngineEvent.self, bufferingPolicy: .unbounded)
        let sequence = Sequence(request: request, continuation: continuation)
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { throw .stopped }
        guard pending < config.maxNumSeqs + config.maxWaiting else { throw .overloaded(waiting: pending) }
        pending += 1
        inbox.append(sequence)
        condition.signal()
        let id = request.id
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.abort(id) }
        }
        return stream
    }

    public func abort(_ id: String) {
        condition.lock()
        aborts.append(id)
        condition.signal()
        condition.unlock()
    }

    /// Prompt tokens already held in local prefix-cache blocks (full blocks, by hash; a hint for the KV connector).
    public func cachedPrefixTokens(_ tokens: [Int]) -> Int {
        config.enablePrefixCaching ? sharedHashes.cachedPrefixTokens(tokens, blockSize: config.blockSize) : 0
    }

    /// Requests admitted but not finished, and requests waiting (for tests and /health).
    public var load: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending
    }

    // MARK: - Step loop

    private func loop() {
        while true {
            condition.lock()
            while inbox.isEmpty, aborts.isEmpty, !stopping, running.isEmpty, waiting.isEmpty { condition.wait() }
            let arrived = inbox, aborted = aborts, stop = stopping
            inbox.removeAll()
            aborts.removeAll()
            condition.unlock()
            waiting.append(contentsOf: arrived)
            for id in aborted { finishAborted(id) }
            if stop {
                for s in running + waiting { finish(s, .abort) }
                return
            }
            if !running.isEmpty || !waiting.isEmpty { step() } else { updateGauges() }
        }
    }

    /// One engine step: schedule (running first, then admissions) within the token budget, run the batch,
    /// sample, emit, retire finished sequences.
    private func step() {
        var budget = config.maxNumBatchedTokens
        // Prompt tokens (chunks of running prefills and admissions), capped while some sequence decodes.
        var promptBudget = budget
        if let cap = config.maxPrefillTokensWhileDecoding, running.contains(where: { $0.tokens.count - $0.computed == 1 }) {
            promptBudget = cap
        }
        var scheduled: [(Sequence, Int)] = []
        var i = 0
        while i < running.count, budget > 0 {
            let s = running[i]
            let remaining = s.tokens.count - s.computed
            let n = remaining == 1 ? 1 : min(remaining, budget, promptBudget)
            if n == 0 {  // a prefill chunk waits for a step with prompt budget left
                i += 1
                continue
            }
            if ensureBlocks(s, upTo: s.computed + n) {
                if remaining > 1 { promptBudget -= n }
                scheduled.append((s, n))
                budget -= n
                i += 1
            } else if let victim = running.last, victim !== s {
                preempt(victim)
                running.removeLast()
                scheduled.removeAll { $0.0 === victim }
            } else {
                preempt(s)
                running.remove(at: i)
            }
        }
        while budget > 0, promptBudget > 0, running.count < config.maxNumSeqs, let s = waiting.first {
            guard let n = admit(s, budget: min(budget, promptBudget)) else { break }
            waiting.removeFirst()
            running.append(s)
            scheduled.append((s, n))
            budget -= n
            promptBudget -= n
        }
        guard !scheduled.isEmpty else {
            updateGauges()
            return
        }
        let batch = scheduled.map { s, n in
            SequenceStep(tokens: Array(s.tokens[s.computed..<s.computed + n]), start: s.computed, blockTable: s.blockTable,
                         logits: s.computed + n == s.tokens.count ? .last : .none)
        }
        let sampling = scheduled.filter { s, n in s.computed + n == s.tokens.count }.map(\.0)
        let outputs = rowOutputs(sampling)
        var sampled = [SampledToken](repeating: SampledToken(token: 0, logprob: nil, top: []), count: sampling.count)
        do {
            try backend.forward(batch, outputs: outputs) { tokens, logprobs, logits in
                var nextToken = 0
                var rows: [(index: Int, row: Int)] = []  // the rows sampled here: result index, row in `logits`
                for i in sampling.indices {
                    if outputs[i].needsLogits {
                        rows.append((i, rows.count))
                    } else {
                        let drawn = logprobs[nextToken]
                        sampled[i] = SampledToken(token: tokens[nextToken], logprob: drawn?.logprob, top: drawn?.top ?? [])
                        nextToken += 1
                    }
                }
                sample(rows, of: sampling, logits: logits, into: &sampled)
            }
        } catch {
            // A failing device is not recoverable here: every scheduled request ends (aborted), the loop goes on.
            logger.error("forward pass failed: \(error)")
            for (s, _) in scheduled {
                running.removeAll { $0 === s }
                finish(s, .abort)
            }
            updateGauges()
            return
        }
        var next = 0
        var done: [(Sequence, FinishReason)] = []
        for (s, n) in scheduled {
            s.computed += n
            registerFullBlocks(s)
            guard s.computed == s.tokens.count else { continue }
            if s.request.exportPromptKV, !s.exported, s.computed >= s.request.prompt.count {
                exportPrompt(s)
            }
            let token = sampled[next]
            next += 1
            emit(s, token)
            if let reason = finishReason(s, token.token) { done.append((s, reason)) }
        }
        for (s, reason) in done {
            running.removeAll { $0 === s }
            finish(s, reason)
        }
        updateGauges()
    }

    /// First scheduling of a waiting sequence: reuse local prefix blocks, import external KV, allocate blocks for
    /// the first chunk. Returns the tokens to compute now, or nil when blocks are short.
    private func admit(_ s: Sequence, budget: Int) -> Int? {
        let bs = config.blockSize
        let cap = s.tokens.count - 1                       // the last token is always computed: its logits are needed
        let (cached, cachedHash) = blocks.lookupWithHash(s.tokens, maxBlocks: cap / bs)
        let local = cached.count * bs
        var start = local
        var imported: Range<Int>?
        if let ext = s.external, ext.range.lowerBound <= local {
            let end = min(ext.range.upperBound, cap)
            if end > local {
                imported = local..<end
                start = end
            }
        }
        // Blocks for the tokens computed now, and for any imported KV beyond them.
        let n = min(s.tokens.count - start, budget)
        let needed = (start + n + bs - 1) / bs - cached.count
        // Take the cached blocks before allocating: an allocation may otherwise evict one of them.
        blocks.acquire(cached)
        guard let fresh = blocks.allocate(needed) else {
            blocks.release(cached)
            return nil
        }
        s.blockTable = cached + fresh
        s.registered = cached.count
        s.lastHash = cachedHash
        if let range = imported, let ext = s.external {
            do {
                try ext.data.withUnsafeBufferPointer { data in
                    try backend.importKV(blockTable: s.blockTable, range: range, from: data.baseAddress!, bufferTokens: ext.range.count,
                                         bufferOffset: range.lowerBound - ext.range.lowerBound)
                }
            } catch {
                logger.warning("importing external KV failed (\(error)); recomputing")
                start = local
                imported = nil
            }
        }
        if !s.admittedBefore {
            s.usage.localCachedTokens = local
            s.usage.externalTokens = imported?.count ?? 0
            metrics.prefixQueries.increment(by: Int64(s.request.prompt.count))
            metrics.prefixHits.increment(by: Int64(local))
            metrics.externalTokens.increment(by: Int64(imported?.count ?? 0))
            metrics.computedPromptTokens.increment(by: Int64(s.request.prompt.count - start))
            s.admittedBefore = true
        }
        s.external = nil
        s.computed = start
        return n
    }

    /// Makes sure `s` has blocks for positions 0..<upTo.
    private func ensureBlocks(_ s: Sequence, upTo: Int) -> Bool {
        let needed = (upTo + config.blockSize - 1) / config.blockSize - s.blockTable.count
        guard needed > 0 else { return true }
        guard let fresh = blocks.allocate(needed) else { return false }
        s.blockTable += fresh
        return true
    }

    /// Frees a running sequence's blocks and puts it back at the head of the queue; it will recompute (mostly
    /// from the prefix cache) when readmitted.
    private func preempt(_ s: Sequence) {
        blocks.release(s.blockTable)
        s.blockTable = []
        s.computed = 0
        s.registered = 0
        waiting.insert(s, at: 0)
        metrics.preemptions.increment()
        logger.debug("preempted \(s.request.id)")
    }

    private func registerFullBlocks(_ s: Sequence) {
        let bs = config.blockSize
        while (s.registered + 1) * bs <= s.computed {
            let range = s.registered * bs..<(s.registered + 1) * bs
            let h = PrefixHash.hash(parent: s.lastHash, tokens: s.tokens[range])
            blocks.register(block: s.blockTable[s.registered], hash: h, parent: s.lastHash, tokens: s.tokens[range])
            s.lastHash = h
            s.registered += 1
        }
    }

    private func exportPrompt(_ s: Sequence) {
        let p = s.request.prompt.count
        let c = backend.config
        var data = [Float](repeating: 0, count: 2 * c.layers * p * c.kvDim)
        s.exported = true
        do {
            try data.withUnsafeMutableBufferPointer { try backend.exportKV(blockTable: s.blockTable, range: 0..<p, into: $0.baseAddress!) }
            s.continuation.yield(.promptKV(ExternalKV(range: 0..<p, data: data)))
        } catch {
            logger.warning("exporting the prompt's KV failed (\(error)); it is not stored")
        }
    }

    private func emit(_ s: Sequence, _ sampled: SampledToken) {
        let now = ContinuousClock.now
        if let last = s.lastTokenAt {
            metrics.interToken.record(duration: now - last)
        } else {
            metrics.ttft.record(duration: now - s.arrival)
        }
        s.lastTokenAt = now
        s.tokens.append(sampled.token)
        s.output.append(sampled.token)
        s.usage.completionTokens = s.output.count
        metrics.generationTokens.increment()
        s.continuation.yield(.token(sampled))
    }

    private func finishReason(_ s: Sequence, _ token: Int) -> FinishReason? {
        let p = s.request.params
        if p.stopTokenIDs.contains(token) || (!p.ignoreEOS && config.eosTokenIDs.contains(token)) { return .stop }
        if s.output.count >= p.maxTokens || s.tokens.count >= config.maxModelLen { return .length }
        return nil
    }

    private func finish(_ s: Sequence, _ reason: FinishReason) {
        blocks.release(s.blockTable)
        s.blockTable = []
        updateGauges()  // before the client hears of it: a scrape after the answer sees its blocks returned
        metrics.requestsFinished[reason]?.increment()
        metrics.promptTokens.increment(by: Int64(s.request.prompt.count))
        metrics.e2e.record(duration: ContinuousClock.now - s.arrival)
        s.continuation.yield(.finished(reason, s.usage))
        s.continuation.finish()
        condition.lock()
        pending -= 1
        condition.unlock()
    }

    private func finishAborted(_ id: String) {
        if let i = running.firstIndex(where: { $0.request.id == id }) {
            finish(running.remove(at: i), .abort)
        } else if let i = waiting.firstIndex(where: { $0.request.id == id }) {
            finish(waiting.remove(at: i), .abort)
        }
    }

    private func updateGauges() {
        metrics.running.record(running.count)
        metrics.waiting.record(waiting.count)
        metrics.kvUsage.record(Double(blocks.used) / Double(config.numBlocks))
    }
}

/// A request inside the engine.
final class Sequence {
    let request: EngineRequest
    let continuation: AsyncStream<EngineEvent>.Continuation
    /// Prompt then generated tokens.
    var tokens: [Int]
    var output: [Int] = []
    var blockTable: [Int] = []
    /// Positions whose KV is in the cache.
    var computed = 0
    /// Leading blocks registered in the prefix cache, and the chained hash of the last of them.
    var registered = 0
    var lastHash = PrefixHash.root
    var external: ExternalKV?
    var exported = false
    var admittedBefore = false
    var usage = EngineUsage()
    var random: RequestRandom
    let arrival = ContinuousClock.now
    var lastTokenAt: ContinuousClock.Instant?

    init(request: EngineRequest, continuation: AsyncStream<EngineEvent>.Continuation) {
        self.request = request
        self.continuation = continuation
        tokens = request.prompt
        external = request.external
        usage.promptTokens = request.prompt.count
        random = RequestRandom(seed: request.params.seed ?? UInt64.random(in: 0...UInt64.max))
    }
}
