// swift-tools-version:6.2
import PackageDescription

// Swift 6 language mode (strict concurrency) for every target; dependencies only flow one way:
// KVStore and ServiceKit know nothing of the engine; the CLI only parses flags and wires services.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// Numeric code is compiled optimized even in debug builds: the test suite (debug) runs real models, which
/// would be 10-50x slower unoptimized.
let optimizedAlways: [SwiftSetting] = strict + [
    .unsafeFlags(["-O"], .when(configuration: .debug)),
    .unsafeFlags(["-target-cpu", "haswell"]),
]

let package = Package(
    name: "swiftwise",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "swiftwise", targets: ["swiftwise"]),
        .library(name: "KVStore", targets: ["KVStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
    ],
    targets: [
        // Shared service plumbing: byte sizes, logging, the Prometheus /metrics endpoint.
        .target(
            name: "ServiceKit",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The lm:// KV store: wire framing, storage tiers, server and client.
        .target(
            name: "KVStore",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // Model checkpoints: memory-mapped, bounds-checked GGUF (and later safetensors) readers.
        .target(
            name: "ModelFiles",
            swiftSettings: strict
        ),
        // dtypes, dequantization and CPU kernels (the reference backend).
        .target(
            name: "TensorKit",
            dependencies: ["ModelFiles", "Int8Kernels", "X86Intrinsics"],
            swiftSettings: optimizedAlways
        ),
        // The x86 intrinsics Swift cannot spell (VNNI int8 dot, lane conversions) and the CPU feature check.
        .target(name: "X86Intrinsics"),
        // Int8-activation matmul kernels, compiled for AVX-512 VNNI; TensorKit calls them only after the CPU check.
        .target(
            name: "Int8Kernels",
            dependencies: ["X86Intrinsics"],
            swiftSettings: strict + [
                .unsafeFlags(["-O"], .when(configuration: .debug)),
                .unsafeFlags(["-target-cpu", "cascadelake"]),
            ]
        ),
        // One file per architecture family; the forward pass reads as the math.
        .target(
            name: "Models",
            dependencies: ["ModelFiles", "TensorKit"],
            swiftSettings: optimizedAlways
        ),
        // The engine: step loop, scheduler, paged-KV block manager with prefix caching, sampling.
        .target(
            name: "Engine",
            dependencies: [
                "Models",
                "TensorKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // The OpenAI-compatible HTTP API of `swiftwise serve` (chat, completions, tokenize, SSE streaming).
        .target(
            name: "OpenAIServer",
            dependencies: [
                "Engine", "Models", "ModelFiles", "Tokenizers", "Jinja", "OpenAIAPI", "ServiceKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // KV transfer between prefill and decode nodes through an lm:// store, LMCache-compatible (keys, serdes, config).
        .target(
            name: "KVTransfer",
            dependencies: [
                "Engine", "KVStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The GPU layer: CUDA driver, NVRTC and cuBLAS opened with dlopen at run time (no CUDA SDK at build time).
        .target(
            name: "CUDA",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // The Llama forward pass on NVIDIA GPUs (bf16 weights, cuBLAS GEMMs, NVRTC kernels, paged KV in device memory).
        .target(
            name: "GPUModel",
            dependencies: ["CUDA", "Models", "ModelFiles", "TensorKit"],
            swiftSettings: strict
        ),
        // Tokenizers: byte-level BPE from GGUF vocabularies, pre-tokenizers, streaming detokenizer.
        .target(
            name: "Tokenizers",
            dependencies: ["ModelFiles"],
            swiftSettings: strict
        ),
        // The Jinja subset chat templates use, rendering exactly as transformers' jinja2 environment.
        .target(
            name: "Jinja",
            swiftSettings: strict
        ),
        // OpenAI-compatible request/response types shared by the server, the proxy and the benchmarks.
        .target(
            name: "OpenAIAPI",
            swiftSettings: strict
        ),
        // The PD router: prefill copy, decode relay, routing policies, health, admin.
        .target(
            name: "Proxy",
            dependencies: [
                "OpenAIAPI",
                "ServiceKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Load generators and reports; measures us against peers in the same run.
        .target(
            name: "Bench",
            dependencies: [
                "KVStore", "ServiceKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "swiftwise",
            dependencies: [
                "KVStore",
                "Proxy",
                "Bench",
                "ModelFiles",
                "Models",
                "Tokenizers",
                "Jinja",
                "ServiceKit",
                "Engine",
                "OpenAIServer",
                "KVTransfer",
                "CUDA",
                "GPUModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ServingTests",
            dependencies: [
                "Engine", "OpenAIServer", "KVTransfer", "KVStore", "Models", "ModelFiles", "Tokenizers", "OpenAIAPI", "ServiceKit",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KVStoreTests",
            dependencies: [
                "KVStore",
                "ServiceKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ProxyTests",
            dependencies: [
                "Proxy",
                "OpenAIAPI",
                "ServiceKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ModelRuntimeTests",
            dependencies: ["ModelFiles", "Tokenizers", "Jinja", "TensorKit", "Models"],
            swiftSettings: strict
        ),
        // GPU layer: the parts that need no GPU always run (kernel source, launch math, cache keys, library errors);
        // the op-by-op harness on the GPU runs where a CUDA driver is found and is skipped with a message elsewhere.
        .testTarget(
            name: "GPUTests",
            dependencies: ["CUDA", "Engine", "GPUModel", "Models"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ServiceKitTests",
            dependencies: ["ServiceKit"],
            swiftSettings: strict
        ),
    ]
)
