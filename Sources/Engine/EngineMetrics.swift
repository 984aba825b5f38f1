import Metrics

/// vLLM's metric names (`vllm:` prefix) so existing dashboards work, plus Swiftwise's own for KV transfer.
struct EngineMetrics: Sendable {
    let running, waiting, kvUsage: Gauge
    let promptTokens, generationTokens, computedPromptTokens, externalTokens: Counter
    let prefixQueries, prefixHits, preemptions: Counter
    let requestsFinished: [FinishReason: Counter]
    let ttft, interToken, e2e: Timer

    init(factory: any MetricsFactory) {
        running = Gauge(label: "vllm:num_requests_running", factory: factory)
        waiting = Gauge(label: "vllm:num_requests_waiting", factory: factory)
        kvUsage = Gauge(label: "vllm:kv_cache_usage_perc", factory: factory)
        promptTokens = Counter(label: "vllm:prompt_tokens_total", factory: factory)
        generationTokens = Counter(label: "vllm:generation_tokens_total", factory: factory)
        computedPromptTokens = Counter(label: "swiftwise:prompt_tokens_computed_total", factory: factory)
        externalTokens = Counter(label: "swiftwise:prompt_tokens_loaded_external_total", factory: factory)
        prefixQueries = Counter(label: "vllm:prefix_cache_queries_total", factory: factory)
        prefixHits = Counter(label: "vllm:prefix_cache_hits_total", factory: factory)
        preemptions = Counter(label: "vllm:num_preemptions_total", factory: factory)
        var finished: [FinishReason: Counter] = [:]
        for reason in [FinishReason.stop, .length, .abort] {
            finished[reason] = Counter(label: "vllm:request_success_total", dimensions: [("finished_reason", reason.rawValue)], factory: factory)
        }
        requestsFinished = finished
        ttft = Timer(label: "vllm:time_to_first_token_seconds", preferredDisplayUnit: .seconds, factory: factory)
        interToken = Timer(label: "vllm:inter_token_latency_seconds", preferredDisplayUnit: .seconds, factory: factory)
        e2e = Timer(label: "vllm:e2e_request_latency_seconds", preferredDisplayUnit: .seconds, factory: factory)
    }
}
