import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A stand-in for an engine node: records what it receives and answers as told.
final class FakeNode: Sendable {
    enum Behaviour: Sendable {
        case ok
        case status(Int)
        case delay(Duration)
        /// Streams two events, then waits for `release()` before the rest (proves there is no buffering).
        case holdAfterFirstEvent
        /// Streams two events, then drops the connection.
        case dieMidStream
        /// Streams an event every 50 ms for 10 s; records when the client went away.
        case slowStream
    }

    struct Received: Sendable {
        var path: String
        var headers: HTTPFields
        var body: [UInt8]
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] }
    }

    let name: String
    private let state = Mutex<(received: [Received], behaviour: Behaviour, healthy: Bool, cancelled: Int)>(([], .ok, true, 0))
    private let gate = AsyncGate()
    private let runtime = Mutex<(port: Int, task: Task<Void, any Error>?)>((0, nil))
    var port: Int { runtime.withLock { $0.port } }

    var received: [Received] { state.withLock { $0.received } }
    var cancelledStreams: Int { state.withLock { $0.cancelled } }
    var url: String { "http://127.0.0.1:\(port)" }

    init(name: String, behaviour: Behaviour = .ok) {
        self.name = name
        state.withLock { $0.behaviour = behaviour }
    }

    func set(_ behaviour: Behaviour) { state.withLock { $0.behaviour = behaviour } }
    func setHealthy(_ healthy: Bool) { state.withLock { $0.healthy = healthy } }
    func release() { gate.open() }

    static func start(_ name: String, _ behaviour: Behaviour = .ok) async throws -> FakeNode {
        let node = FakeNode(name: name, behaviour: behaviour)
        try await node.run()
        return node
    }

    private func run() async throws {
        let router = Router()
        for path in ["/v1/chat/completions", "/v1/completions"] {
            router.post(RouterPath(path)) { request, _ in try await self.complete(request, path: path) }
        }
        router.get("/health") { _, _ in self.state.withLock { $0.healthy } ? Response(status: .ok) : Response(status: .serviceUnavailable) }
        router.get("/v1/models") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(string: #"{"object":"list","data":[{"id":"fake-model","object":"model","owned_by":"\#(self.name)"}]}"#)))
        }
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "test.fake-node")
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
                              logger: logger)
        let task = Task { try await app.run() }
        for await port in stream {
            runtime.withLock { $0 = (port, task) }
            break
        }
    }

    func stop() async {
        let task = runtime.withLock { $0.task }
        task?.cancel()
        _ = await task?.result
    }

    private func complete(_ request: Request, path: String) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 64 << 20)
        state.withLock { $0.received.append(Received(path: path, headers: request.headers, body: Array(body.readableBytesView))) }
        let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
        let stream = json["stream"] as? Bool ?? false
        let chat = path.contains("chat")
        switch state.withLock({ $0.behaviour }) {
        case .status(let code):
            return Response(status: .init(code: code), headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"fake \#(code) from \#(name)","type":"invalid_request_error","param":null,"code":\#(code)}}"#)))
        case .delay(let d):
            try await Task.sleep(for: d)
            return answer(stream: stream, chat: chat)
        case .ok:
            return answer(stream: stream, chat: chat)
        case .holdAfterFirstEvent, .dieMidStream, .slowStream:
            let behaviour = state.withLock { $0.behaviour }
            return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: .init { writer in
                try await writer.write(ByteBuffer(string: Self.event(chat: chat, text: "Hel", index: 0)))
                try await writer.write(ByteBuffer(string: Self.event(chat: chat, text: "lo", index: 1)))
                switch behaviour {
                case .holdAfterFirstEvent:
                    await self.gate.wait()
                case .dieMidStream:
                    // Let the events reach the proxy before the connection drops (an abort discards unsent bytes).
                    try await Task.sleep(for: .milliseconds(200))
                    throw CancellationError()
                default:
                    do {
                        for i in 0..<200 {
                            try await Task.sleep(for: .milliseconds(50))
                            try await writer.write(ByteBuffer(string: Self.event(chat: chat, text: ".", index: 2 + i)))
                        }
                    } catch {
                        self.state.withLock { $0.cancelled += 1 }
                        throw error
                    }
                }
                try await writer.write(ByteBuffer(string: Self.finalEvents(chat: chat)))
                try await writer.finish(nil)
            })
        }
    }

    private func answer(stream: Bool, chat: Bool) -> Response {
        if stream {
            let text = Self.event(chat: chat, text: "Hel", index: 0) + Self.event(chat: chat, text: "lo", index: 1) + Self.finalEvents(chat: chat)
            return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        let body = chat
            ? #"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from \#(name)"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#
            : #"{"id":"cmpl-1","object":"text_completion","created":1,"model":"fake-model","choices":[{"index":0,"text":"Hello from \#(name)","finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func event(chat: Bool, text: String, index: Int) -> String {
        chat
            ? #"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"fake-model","choices":[{"index":0,"delta":{"#
                + (index == 0 ? #""role":"assistant","# : "") + #""content":"\#(text)"},"finish_reason":null}]}"# + "\n\n"
            : #"data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"fake-model","choices":[{"index":0,"text":"\#(text)","finish_reason":null,"logprobs":null}]}"# + "\n\n"
    }

    static func finalEvents(chat: Bool) -> String {
        (chat
            ? #"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"fake-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#
            : #"data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"fake-model","choices":[{"index":0,"text":"","finish_reason":"stop","logprobs":null}]}"#)
            + "\n\ndata: [DONE]\n\n"
    }
}

/// A one-shot latch tests open to let a fake node continue.
final class AsyncGate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}
