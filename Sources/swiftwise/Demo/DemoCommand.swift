import ArgumentParser
import Foundation
import Logging
import ServiceKit
import Synchronization

/// `swiftwise demo`: the whole PD system on loopback — KV store, N prefill nodes, M decode nodes and the proxy — as
/// child processes of this one, with a sample request, until Ctrl-C.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Start the KV store, prefill and decode nodes and the proxy on this machine (Ctrl-C stops all).")

    @Option(help: "A GGUF model (default: the one scripts/setup.sh fetched).") var model: String?
    @Option(help: "Prefill nodes.") var prefill = 1
    @Option(help: "Decode nodes.") var decode = 1
    @Option(help: "The proxy's port (the endpoint clients use).") var port = 8030
    @Option(help: "The proxy's address.") var host = "127.0.0.1"
    @Option(help: "LMCache chunk_size: tokens per KV chunk (prompts shorter than this are recomputed on decode).") var chunkSize = 16
    @Option(help: "KV cache memory per node.") var kvCacheMemory = ByteSize(bytes: 256 << 20)
    @Option(help: "Maximum prompt + completion length.") var maxModelLen = 2048
    @Option(help: "Kernel threads per node (default: every core).") var threads: Int?
    @Option(help: "The sample chat request's message.") var prompt = "San Francisco"
    @Flag(help: "Skip the sample request.") var noSample = false
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard prefill >= 1, decode >= 1, prefill + decode <= 16 else { throw ValidationError("--prefill and --decode must be 1 or more (16 nodes at most)") }
        guard chunkSize > 0 else { throw ValidationError("--chunk-size must be positive") }
    }

    static var defaultModel: String {
        let cache = ProcessInfo.processInfo.environment["SWIFTWISE_CACHE"] ?? (NSHomeDirectory() + "/.cache/swiftwise")
        return cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    func run() async throws {
        bootstrapLogging(level: logging.level)
        let logger = Logger(label: "swiftwise.demo")
        let modelPath = model ?? Self.defaultModel
        guard FileManager.default.fileExists(atPath: modelPath) else {
            throw ValidationError("model \(modelPath) not found: run ./scripts/setup.sh (or scripts/fetch-model.sh), or pass --model PATH")
        }
        let name = URL(fileURLWithPath: modelPath).deletingPathExtension().lastPathComponent.replacingOccurrences(of: "@", with: "_")
        let work = NSTemporaryDirectory() + "swiftwise-demo-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let storePort = findFreePort()
        let configFile = work + "/lmcache.yaml"
        try """
            # Written by swiftwise demo: the reference design's example.yaml, pointed at the local store.
            chunk_size: \(chunkSize)
            local_device: "cpu"
            remote_url: "lm://127.0.0.1:\(storePort)"
            remote_serde: "naive"
            max_local_cpu_size: 1
            pipelined_backend: False
            """.write(toFile: configFile, atomically: true, encoding: .utf8)

        var specs: [Supervisor.Spec] = [
            .init(role: "kvstore", port: storePort, arguments: ["kvstore", "127.0.0.1", "\(storePort)", "cpu", "--capacity", "2GiB",
                                                                "--log-level", logging.level.rawValue], http: false),
        ]
        func node(_ role: String, _ kvRole: String) -> Supervisor.Spec {
            let p = findFreePort()
            var args = ["serve", modelPath, "--host", "127.0.0.1", "--port", "\(p)", "--served-model-name", name, modelPath,
                        "--max-model-len", "\(maxModelLen)", "--kv-cache-memory", kvCacheMemory.description,
                        "--kv-transfer-config", #"{"kv_connector":"LMCacheConnector","kv_role":"\#(kvRole)"}"#,
                        "--log-level", logging.level.rawValue]
            if let threads { args += ["--threads", "\(threads)"] }
            return .init(role: role, port: p, arguments: args, environment: ["LMCACHE_CONFIG_FILE": configFile])
        }
        let prefills = (0..<prefill).map { node("prefill-\($0)", "kv_producer") }
        let decodes = (0..<decode).map { node("decode-\($0)", "kv_consumer") }
        specs += prefills + decodes
        let proxy = Supervisor.Spec(role: "proxy", port: port, arguments: ["proxy", "--host", host, "--port", "\(port)", "--log-level", logging.level.rawValue]
                                        + prefills.flatMap { ["--prefill", "http://127.0.0.1:\($0.port)"] }
                                        + decodes.flatMap { ["--decode", "http://127.0.0.1:\($0.port)"] })
        specs.append(proxy)

        let supervisor = Supervisor(executable: ChildProcess.currentExecutable, logger: logger)
        let stopOrder = ["proxy"] + decodes.map(\.role) + prefills.map(\.role) + ["kvstore"]
        // Ctrl-C or SIGTERM from here on stops every child.
        let signals = SignalWaiter([SIGINT, SIGTERM])
        do {
            for spec in specs { try supervisor.start(spec) }
            logger.info("starting: KV store on lm://127.0.0.1:\(storePort), \(prefill) prefill and \(decode) decode nodes, proxy on \(host):\(port)")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for spec in specs { group.addTask { try await supervisor.waitUntilReady(spec) } }
                group.addTask {
                    await signals.wait()
                    if signals.hasFired { throw DemoError("interrupted") }
                }
                for _ in specs { try await group.next() }
                group.cancelAll()
            }
        } catch {
            supervisor.stopAll(order: stopOrder)
            try? FileManager.default.removeItem(atPath: work)
            throw error
        }
        let url = "http://\(host):\(port)"
        say("""

            swiftwise demo: ready at \(url)
              model:   \(name) (\(modelPath))
              nodes:   \(prefills.map { "\($0.role) :\($0.port)" }.joined(separator: ", ")); \(decodes.map { "\($0.role) :\($0.port)" }.joined(separator: ", ")); kvstore lm://127.0.0.1:\(storePort)
              try:     curl \(url)/v1/chat/completions -H "Content-Type: application/json" -d '{"model": "\(name)", "temperature": 0.75, "messages": [{"role": "user", "content": "San Francisco"}], "max_tokens": 200}'
              metrics: curl \(url)/metrics   (each node: curl http://127.0.0.1:PORT/metrics)

            """)
        if !noSample {
            say("sample request (streamed through proxy -> prefill -> store -> decode): \(prompt)")
            do {
                try await DemoHTTP.streamChat(port: port, model: name, prompt: prompt, maxTokens: 64)
            } catch {
                logger.error("\(error)")
            }
        }
        say("serving until Ctrl-C")
        let allSpecs = specs
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await supervisor.watch(allSpecs) }
            await signals.wait()
            supervisor.stopAll(order: stopOrder)
            await group.waitForAll()
        }
        try? FileManager.default.removeItem(atPath: work)
        say("swiftwise demo: stopped")
    }
}

/// Writes a line to standard output unbuffered, in order with the children's prefixed lines.
private func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// Turns SIGINT/SIGTERM into an async event instead of process death. `wait` returns once a signal has arrived
/// (at any time before or during the wait) or when the waiting task is cancelled.
final class SignalWaiter: @unchecked Sendable {  // `sources` is written only in init
    private struct State {
        var fired = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())
    private var sources: [any DispatchSourceSignal] = []

    init(_ signals: [Int32]) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.fire() }
            source.resume()
            sources.append(source)
        }
    }

    private func fire() {
        let all = state.withLock { s in
            s.fired = true
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for w in all { w.resume() }
    }

    func wait() async {
        let id = state.withLock { s in
            defer { s.nextID += 1 }
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s in
                    if s.fired || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    var hasFired: Bool { state.withLock { $0.fired } }
}
