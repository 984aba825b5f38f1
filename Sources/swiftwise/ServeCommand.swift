import ArgumentParser
import CUDA
import Engine
import GPUModel
import Foundation
import Logging
import Models
import OpenAIServer
import ServiceKit

/// `swiftwise serve MODEL`: an OpenAI-compatible inference server, with vLLM's flag names.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve a model over the OpenAI API (vLLM-style flags); a prefill or decode node with --kv-transfer-config.")

    @Argument(help: "A GGUF model file or a Hugging Face folder (config.json, safetensors, tokenizer.json).") var model: String
    @Option(help: "Address to listen on.") var host = "0.0.0.0"
    @Option(help: "Port to listen on.") var port = 8000
    @Option(parsing: .upToNextOption, help: "Model names the API answers to (default: the MODEL argument).") var servedModelName: [String] = []
    @Option(help: "Maximum prompt + completion length (default: the model's context length).") var maxModelLen: Int?
    @Option(help: "Maximum sequences running at once.") var maxNumSeqs = 64
    @Option(help: "Maximum tokens computed per engine step (chunked prefill budget).") var maxNumBatchedTokens = 512
    @Option(help: "Prompt tokens per step while some sequence decodes, which bounds the inter-token latency (default: 128 on --device cpu, the whole --max-num-batched-tokens on cuda; 0: no cap).")
    var maxPrefillTokensWhileDecoding: Int?
    @Option(help: "Requests that may queue beyond --max-num-seqs before new ones get 503.") var maxQueuedRequests = 1024
    @Option(help: "Memory for the KV cache, e.g. 2GiB.") var kvCacheMemory = ByteSize(bytes: 1 << 30)
    @Option(help: "With --device cuda: share of device memory for weights + KV cache (default 0.9), as in vLLM.") var gpuMemoryUtilization: Double?
    @Option(help: "Tokens per KV cache block.") var blockSize = 16
    @Flag(inversion: .prefixedEnableDisable, help: "Reuse KV blocks of shared prompt prefixes.") var prefixCaching = true
    @Flag(name: .customLong("no-enable-prefix-caching"), help: "Same as --disable-prefix-caching (vLLM's spelling).") var noEnablePrefixCaching = false
    @Option(help: "cpu or cuda.") var device = "cpu"
    @Option(help: "Kernel threads (default: every core, or SWIFTWISE_THREADS).") var threads: Int?
    @Option(help: "Require `Authorization: Bearer KEY` on /v1 endpoints (default: VLLM_API_KEY).") var apiKey: String?
    @Option(help: #"KV transfer, e.g. '{"kv_connector":"LMCacheConnector","kv_role":"kv_producer"}'; LMCache settings from LMCACHE_CONFIG_FILE or LMCACHE_* variables."#)
    var kvTransferConfig: String?
    @Option(help: "Accepted for vLLM compatibility: auto or float32 (the CPU engine computes in fp32).") var dtype = "auto"
    @Option(help: "Accepted for vLLM compatibility: must be 1.") var tensorParallelSize = 1
    @Flag(help: "Accepted for vLLM compatibility (no effect).") var disableLogRequests = false
    @Flag(help: "Accepted for vLLM compatibility (no effect).") var trustRemoteCode = false
    @Option(help: "Largest accepted request body.") var maxBodySize = ByteSize(bytes: 32 << 20)
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard device == "cpu" || device == "cuda" else { throw ValidationError("--device must be cpu or cuda") }
        guard tensorParallelSize == 1 else { throw ValidationError("--tensor-parallel-size \(tensorParallelSize) is not supported (1 only)") }
        guard ["auto", "float32", "fp32"].contains(dtype) else { throw ValidationError("--dtype \(dtype) is not supported on CPU (auto or float32)") }
        guard blockSize > 0, blockSize <= 256 else { throw ValidationError("--block-size must be in 1...256") }
        guard maxNumSeqs > 0, maxNumBatchedTokens > 0, maxQueuedRequests >= 0 else { throw ValidationError("--max-num-seqs and --max-num-batched-tokens must be positive") }
        // A step schedules running sequences first, in order, within the budget: below one token each, the last ones
        // would wait for the first to finish (vLLM refuses it too).
        guard maxNumBatchedTokens >= maxNumSeqs else {
            throw ValidationError("--max-num-batched-tokens (\(maxNumBatchedTokens)) must be at least --max-num-seqs (\(maxNumSeqs)): every running sequence needs a token of each step")
        }
        if let cap = maxPrefillTokensWhileDecoding, cap < 0 { throw ValidationError("--max-prefill-tokens-while-decoding must be 0 (no cap) or positive") }
        if let threads, threads <= 0 { throw ValidationError("--threads must be positive") }
        guard !servedModelName.contains(where: { $0.contains("@") }) else { throw ValidationError("--served-model-name must not contain '@' (it is part of KV store keys)") }
    }

    func run() async throws {
        bootstrapLogging(level: logging.level)
        let logger = Logger(label: "swiftwise.serve")
        if let threads { setenv("SWIFTWISE_THREADS", String(threads), 1) }
        if device == "cpu", gpuMemoryUtilization != nil { logger.warning("--gpu-memory-utilization has no effect on --device cpu; the KV cache uses --kv-cache-memory") }
        let names = servedModelName.isEmpty ? [model] : servedModelName
        let loadStart = ContinuousClock.now
        let checkpoint = try LlamaCheckpoint.open(model)
        let served = try ServedModel.load(checkpoint: checkpoint, path: model, names: names, maxModelLen: maxModelLen)
        let config = served.config
        let bytesPerBlock = (device == "cuda" ? GPULlama.cacheBytesPerToken(config) : PagedKVCache.bytesPerToken(config)) * blockSize
        let progress: (Int, Int) -> Void = { done, total in ProgressBar.draw(label: "loading weights", done: done, total: total) }
        let backend: any ForwardBackend
        let numBlocks: Int
        if device == "cuda" {
            let gpu = try GPUContext()
            // vLLM's rule (KVCacheSize.memoryFraction): the KV cache gets what is left of `utilization × total` once the
            // weights are loaded, less the scratch buffers for --max-num-batched-tokens rows and --max-num-seqs rows of
            // logits and 256 MiB for what is not counted. An explicit --kv-cache-memory without the flag sizes it instead.
            let utilization = gpuMemoryUtilization ?? 0.9
            guard utilization > 0, utilization <= 1 else { throw ValidationError("--gpu-memory-utilization must be in (0, 1]") }
            let cache: KVCacheSize = gpuMemoryUtilization == nil && kvCacheMemory.bytes != (1 << 30)
                ? .blocks(kvCacheMemory.bytes / bytesPerBlock) : .memoryFraction(utilization)
            if cache == .blocks(0) { throw ValidationError("--kv-cache-memory \(kvCacheMemory) holds no KV block of \(bytesPerBlock) bytes") }
            logger.info("GPU \(gpu.name) (sm_\(gpu.computeCapability)), \(gpu.memory.free >> 20) MiB free")
            let llama = try GPULlama(checkpoint: checkpoint, gpu: gpu, blockSize: blockSize, cache: cache,
                                     maxTokens: maxNumBatchedTokens, maxLogitRows: maxNumSeqs, progress: progress)
            numBlocks = llama.numBlocks
            backend = llama
        } else {
            numBlocks = kvCacheMemory.bytes / bytesPerBlock
            backend = CPUBackend(model: try LlamaModel(checkpoint: checkpoint, progress: progress), blockSize: blockSize, numBlocks: numBlocks)
        }
        let neededBlocks = (served.maxModelLen + blockSize - 1) / blockSize
        guard numBlocks >= neededBlocks else {
            throw ValidationError("the KV cache holds \(numBlocks * blockSize) tokens, less than --max-model-len \(served.maxModelLen); raise --kv-cache-memory (or --gpu-memory-utilization) to at least \(ByteSize(bytes: neededBlocks * bytesPerBlock)) or lower --max-model-len")
        }
        var engineConfig = EngineConfig(maxModelLen: served.maxModelLen, numBlocks: numBlocks)
        engineConfig.maxNumSeqs = maxNumSeqs
        engineConfig.maxNumBatchedTokens = maxNumBatchedTokens
        // On a CPU a step's time follows its prompt tokens (about 2 ms each for the default model on 2 cores), and
        // every decoding stream waits for whole steps (bench/README.md: ITL p99 1.6-1.8 s → 0.5 s at concurrency 16).
        let promptCap = maxPrefillTokensWhileDecoding ?? (device == "cpu" ? 128 : 0)
        engineConfig.maxPrefillTokensWhileDecoding = promptCap > 0 && promptCap < maxNumBatchedTokens ? promptCap : nil
        engineConfig.maxWaiting = maxQueuedRequests
        engineConfig.blockSize = blockSize
        engineConfig.enablePrefixCaching = prefixCaching && !noEnablePrefixCaching
        engineConfig.eosTokenIDs = served.tokenizer.eosTokenIDs
        let metrics = MetricsEndpoint()
        // LMCache keys carry the MODEL argument itself (not --served-model-name), as vLLM's connector does.
        let connector = try KVTransferSetup.connector(json: kvTransferConfig, modelName: model, config: config,
                                                      metricsFactory: metrics.factory, logger: logger)
        let engine = EngineCore(backend: backend, config: engineConfig, metricsFactory: metrics.factory, logger: logger)
        var serverConfig = InferenceServer.Configuration()
        serverConfig.host = host
        serverConfig.port = port
        serverConfig.apiKey = apiKey ?? ProcessInfo.processInfo.environment["VLLM_API_KEY"]
        serverConfig.maxBodyBytes = maxBodySize.bytes
        let server = InferenceServer(configuration: serverConfig, served: served, engine: engine, connector: connector,
                                     metricsEndpoint: metrics, logger: logger)
        let loadMs = Int((ContinuousClock.now - loadStart).seconds * 1000)
        logger.info("\(config.architecture) \(config.layers) layers loaded in \(loadMs) ms; KV cache \(numBlocks) blocks × \(blockSize) tokens (\(ByteSize(bytes: numBlocks * bytesPerBlock))); prefix caching \(engineConfig.enablePrefixCaching ? "on" : "off"); max model len \(served.maxModelLen)")
        try await runUntilSignalled(server.makeServices { port in
            logger.info("serving \(names) on http://\(host):\(port)")
        }, logger: logger)
    }
}
