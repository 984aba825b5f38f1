import ArgumentParser
import AsyncHTTPClient
import Bench
import Foundation
import Logging
import ServiceKit

/// `swiftwise bench proxy`: the proxy's added latency against a direct call and against nginx, same stub upstream.
struct ProxyBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Benchmark the proxy's overhead: direct vs swiftwise proxy vs nginx, in front of one stub upstream.")

    @Option(help: "Concurrent streams, comma-separated.") var concurrency = "1,64"
    @Option(help: "Requests per run.") var requests = 2000
    @Option(help: "SSE events per streamed answer.") var events = 16
    @Option(help: "Write the results as JSON to this file.") var json: String?

    func run() async throws {
        let levels = concurrency.split(separator: ",").compactMap { Int($0) }
        guard !levels.isEmpty, levels.allSatisfy({ $0 > 0 }) else { throw ValidationError("--concurrency needs positive integers") }
        ChildProcess.stopAllOnSignal()  // Ctrl-C or SIGTERM stops the stub, the proxies and nginx too
        let exe = ChildProcess.currentExecutable
        var children: [ChildProcess] = []
        defer { children.forEach { $0.stop() } }
        func start(_ name: String, _ executable: String, _ args: [String], port: Int) throws -> Int32 {
            let child = try ChildProcess(name: name, executable: executable, arguments: args)
            children.append(child)
            try child.waitUntilListening(host: "127.0.0.1", port: port)
            return child.process.processIdentifier
        }
        let stubPort = findFreePort()
        _ = try start("stub node", exe, ["bench", "stub-node", "--port", "\(stubPort)", "--events", "\(events)"], port: stubPort)
        let stub = "http://127.0.0.1:\(stubPort)"
        let pdPort = findFreePort(), relayPort = findFreePort()
        let pd = try start("swiftwise proxy (PD)", exe, ["proxy", "--port", "\(pdPort)", "--prefill", stub, "--decode", stub,
                                                         "--log-level", "error"], port: pdPort)
        let relay = try start("swiftwise proxy (relay)", exe, ["proxy", "--port", "\(relayPort)", "--decode", stub,
                                                               "--log-level", "critical"], port: relayPort)
        // Each target's processes, whose CPU time per request the table shows (nginx: its master and workers).
        var targets: [(name: String, url: String, pid: Int32?)] = [
            ("direct", stub, nil), ("swiftwise proxy relay", "http://127.0.0.1:\(relayPort)", relay),
            ("swiftwise proxy PD", "http://127.0.0.1:\(pdPort)", pd)]
        if let nginx = ChildProcess.which("nginx") {
            let nginxPort = findFreePort()
            let dir = NSTemporaryDirectory() + "swiftwise-nginx-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Self.nginxConfig(listen: nginxPort, upstream: stubPort, dir: dir).write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
            let master = try start("nginx", nginx, ["-p", dir, "-c", dir + "/nginx.conf"], port: nginxPort)
            targets.append(("nginx", "http://127.0.0.1:\(nginxPort)", master))
        } else {
            print("nginx not found (apt-get install nginx): comparing against the direct call only")
        }
        var clientConfig = HTTPClient.Configuration()
        clientConfig.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfig)
        let body = #"{"model":"stub","messages":[{"role":"user","content":"San Francisco"}],"max_tokens":16,"stream":true}"#
        var results: [HTTPLoadResult] = []
        for level in levels {
            for (name, url, pid) in targets {
                _ = await runHTTPLoad(target: name, url: url + "/v1/chat/completions", body: body, concurrency: level,
                                      requests: min(200, requests), client: client)  // warm connections and caches
                let cpuBefore = pid.flatMap { ProcessTable.cpuSeconds($0, children: true) }
                var r = await runHTTPLoad(target: name, url: url + "/v1/chat/completions", body: body,
                                          concurrency: level, requests: requests, client: client)
                if let pid, let cpuBefore, let cpuAfter = ProcessTable.cpuSeconds(pid, children: true) {
                    r.cpuMicrosecondsPerRequest = (cpuAfter - cpuBefore) / Double(r.requests) * 1e6
                }
                FileHandle.standardError.write(Data("  \(name) at \(level): \(Int(r.requestsPerSecond)) req/s\n".utf8))
                results.append(r)
            }
        }
        try await client.shutdown()
        print("proxy overhead: \(requests) streamed chat requests (\(events) SSE events each) per run; 'relay' = decode only (nginx's job), 'PD' = prefill copy + decode")
        print(formatHTTPLoad(results))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(results).write(to: URL(fileURLWithPath: json))
        }
    }

    static func nginxConfig(listen: Int, upstream: Int, dir: String) -> String {
        """
        worker_processes auto;
        pid \(dir)/nginx.pid;
        error_log \(dir)/error.log warn;
        daemon off;
        events { worker_connections 4096; }
        http {
            access_log off;
            client_body_temp_path \(dir)/body;
            proxy_temp_path \(dir)/proxy;
            fastcgi_temp_path \(dir)/fastcgi;
            uwsgi_temp_path \(dir)/uwsgi;
            scgi_temp_path \(dir)/scgi;
            upstream stub { server 127.0.0.1:\(upstream); keepalive 256; }
            server {
                listen 127.0.0.1:\(listen);
                location / {
                    proxy_pass http://stub;
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                    proxy_buffering off;
                }
            }
        }
        """
    }
}

/// `swiftwise bench stub-node`: the instant upstream used by `bench proxy`.
struct StubNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stub-node", abstract: "An instant OpenAI-shaped upstream for proxy benchmarks.",
                                                    shouldDisplay: false)
    @Option var host = "127.0.0.1"
    @Option var port = 8100
    @Option var events = 16

    func run() async throws {
        var logger = Logger(label: "swiftwise.stub")
        logger.logLevel = .error
        try await runUntilSignalled([StubNode.makeApplication(host: host, port: port, events: events, logger: logger)], logger: logger)
    }
}
