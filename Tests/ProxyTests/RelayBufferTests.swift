import NIOCore
import Testing
@testable import Proxy

/// The relay's buffer between the task reading a decode node's body and the one writing to the client.
@Suite("proxy: the relay buffer", .timeLimit(.minutes(1)))
struct RelayBufferTests {
    struct Broken: Error {}

    static func parts(_ strings: [String], failing: Bool = false) -> AsyncThrowingStream<ByteBuffer, any Error> {
        AsyncThrowingStream { continuation in
            for s in strings { continuation.yield(ByteBuffer(string: s)) }
            continuation.finish(throwing: failing ? Broken() : nil)
        }
    }

    @Test("parts that arrived before a take leave together, in order, then the end")
    func coalesces() async {
        let buffer = RelayBuffer()
        await buffer.fill(from: Self.parts(["data: a\n\n", "data: b\n\n", "data: [DONE]\n\n"]))
        let (bytes, end) = await buffer.take()
        #expect(bytes.map { String(buffer: $0) } == "data: a\n\ndata: b\n\ndata: [DONE]\n\n")
        guard case .finished = end else { Issue.record("expected the end, got \(String(describing: end))"); return }
    }

    @Test("a failing body gives its bytes, then the failure")
    func failure() async {
        let buffer = RelayBuffer()
        await buffer.fill(from: Self.parts(["data: a\n\n"], failing: true))
        let (bytes, end) = await buffer.take()
        #expect(bytes.map { String(buffer: $0) } == "data: a\n\n")
        guard case .failed(let error) = end else { Issue.record("expected a failure"); return }
        #expect(error is Broken)
    }

    @Test("past its limit the reader waits for the writer, and every byte arrives once, in order")
    func backpressure() async {
        let buffer = RelayBuffer(limit: 4)
        let parts = (0..<50).map { String(format: "%04d", $0) }
        let reader = Task { await buffer.fill(from: Self.parts(parts)) }
        var received = ""
        var takes = 0
        while true {
            let (bytes, end) = await buffer.take()
            takes += 1
            if let bytes { received += String(buffer: bytes) }
            if end != nil { break }
        }
        await reader.value
        #expect(received == parts.joined())
        #expect(takes > 1)  // the reader paused at 4 bytes instead of buffering all 200
    }

    @Test("a reader waiting for room ends when its task is cancelled (the client went away)")
    func cancelledWhileWaiting() async {
        let buffer = RelayBuffer(limit: 4)
        let endless = AsyncStream<ByteBuffer>(bufferingPolicy: .bufferingOldest(4)) { continuation in
            let producer = Task {
                while !Task.isCancelled {
                    continuation.yield(ByteBuffer(string: "data"))
                    await Task.yield()
                }
            }
            continuation.onTermination = { _ in producer.cancel() }
        }
        let reader = Task { await buffer.fill(from: endless) }
        _ = await buffer.take()
        reader.cancel()
        await reader.value  // returns: a hang here is what the suite's time limit would catch
    }
}
