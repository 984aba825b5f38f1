import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Proxy
import ServiceKit
import ServiceLifecycle

/// A proxy running in this process on a free port in front of the given fake nodes.
final class TestProxy: Sendable {
    let server: ProxyServer
    let port: Int
    private let task: Task<Void, any Error>
    var url: String { "http://127.0.0.1:\(port)" }

    init(prefill: [FakeNode], decode: [FakeNode], extraPrefill: [String] = [], extraDecode: [String] = [],
         configure: (inout ProxyConfiguration) -> Void = { _ in }) async throws {
        var config = ProxyConfiguration()
        config.port = 0
        config.prefill = try (prefill.map(\.url) + extraPrefill).map(Endpoints.parseOne)
        config.decode = try (decode.map(\.url) + extraDecode).map(Endpoints.parseOne)
        config.healthInterval = .seconds(3600)  // tests drive health explicitly unless they ask otherwise
        config.connectTimeout = .seconds(3)
        configure(&config)
        var logger = Logger(label: "test.proxy")
        logger.logLevel = .critical
        let server = ProxyServer(configuration: config, logger: logger)
        self.server = server
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let services = server.makeServices { port in continuation.yield(port) }
        task = Task {
            let group = ServiceGroup(services: services, logger: logger)
            try await group.run()
        }
        var bound = 0
        for await p in stream {
            bound = p
            break
        }
        port = bound
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// One HTTP client for all tests.
let testClient: HTTPClient = {
    var config = HTTPClient.Configuration()
    config.timeout = .init(connect: .seconds(5), read: .seconds(30))
    return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
}()

struct HTTPResult {
    var status: Int
    var headers: [(String, String)]
    var body: String
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}

func post(_ url: String, _ body: String, headers: [(String, String)] = []) async throws -> HTTPResult {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers.add(name: "Content-Type", value: "application/json")
    for (n, v) in headers { request.headers.add(name: n, value: v) }
    request.body = .bytes(ByteBuffer(string: body))
    let response = try await testClient.execute(request, timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 64 << 20)
    return HTTPResult(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
                      body: String(buffer: bytes))
}

func get(_ url: String, headers: [(String, String)] = []) async throws -> HTTPResult {
    var request = HTTPClientRequest(url: url)
    for (n, v) in headers { request.headers.add(name: n, value: v) }
    let response = try await testClient.execute(request, timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 64 << 20)
    return HTTPResult(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
                      body: String(buffer: bytes))
}

func jsonObject(_ text: String) -> [String: Any]? {
    try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
}

/// A port bound but never listened on: connections are refused, and no other test can take the port while the
/// holder lives (a merely "free" port may be reused by a parallel test's server).
final class DeadPort: @unchecked Sendable {
    let fd: Int32
    let port: Int
    var url: String { "http://127.0.0.1:\(port)" }

    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }
}

let chatBody = #"{"model":"fake-model","messages":[{"role":"user","content":"San Francisco"}],"max_tokens":200,"temperature":0.75}"#
