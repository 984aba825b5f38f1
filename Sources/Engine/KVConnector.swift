/// The engine's side of KV transfer (`--kv-transfer-config`): a consumer fetches a prompt's KV before the request
/// is queued; a producer stores the prompt's KV before the request is answered. Implemented by `KVTransfer`.
public protocol KVConnector: Sendable {
    var isProducer: Bool { get }
    var isConsumer: Bool { get }
    /// KV for a leading part of `prompt` from outside, skipping the first `locallyCached` tokens (already in local
    /// blocks); nil when nothing usable is there. Never throws: a failure is a miss.
    func load(prompt: [Int], locallyCached: Int) async -> ExternalKV?
    /// Stores the prompt's KV ([2][layers][prompt.count][kvDim]); returns once it is durable in the store (or
    /// the store failed, which is logged, not thrown).
    func store(prompt: [Int], kv: ExternalKV) async
}
