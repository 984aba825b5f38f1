/// Limits of the engine, named after vLLM's flags.
public struct EngineConfig: Sendable {
    public var maxNumSeqs = 64
    public var maxNumBatchedTokens = 512
    /// Prompt tokens a step may compute while some running sequence decodes (nil: up to `maxNumBatchedTokens`). A
    /// step's time follows its prompt tokens and every decoding stream waits for whole steps, so on a CPU this bounds
    /// the inter-token latency under load; a step without decodes still takes the whole budget.
    public var maxPrefillTokensWhileDecoding: Int?
    public var maxModelLen: Int
    public var blockSize = 16
    public var numBlocks: Int
    public var enablePrefixCaching = true
    public var eosTokenIDs: Set<Int> = []
    /// Requests that may wait for a slot before new ones get `overloaded` (HTTP 503).
    public var maxWaiting = 1024

    public init(maxModelLen: Int, numBlocks: Int) {
        self.maxModelLen = maxModelLen
        self.numBlocks = numBlocks
    }
}
