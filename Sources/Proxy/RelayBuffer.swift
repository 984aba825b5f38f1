import NIOCore
import Synchronization

/// Between the task that reads a decode node's body and the one that writes it to the client: the reader appends
/// each part as it arrives, the writer takes everything that has arrived since its last write. Parts that arrive
/// together (a burst of SSE events read in one go) leave in one write instead of one write and flush each; a part
/// that arrives alone leaves at once, so nothing waits for company. The reader pauses while `limit` bytes wait
/// (a slow client does not make the proxy hold the whole body).
final class RelayBuffer: Sendable {
    enum End: Sendable { case finished, failed(any Error) }

    private struct State {
        var bytes: ByteBuffer?
        var end: End?
        var writer: CheckedContinuation<Void, Never>?
        var reader: CheckedContinuation<Void, Never>?
        var readerCancelled = false
    }
    private let state = Mutex(State())
    let limit: Int

    init(limit: Int = 1 << 20) { self.limit = limit }

    /// Reads `body` to its end (or failure, or cancellation) into the buffer.
    func fill<Body: AsyncSequence>(from body: Body) async where Body.Element == ByteBuffer {
        do {
            for try await part in body { await append(part) }
            close(.finished)
        } catch {
            close(.failed(error))
        }
    }

    /// What arrived since the last call, once something did, and the end once the body has ended (after its bytes).
    func take() async -> (bytes: ByteBuffer?, end: End?) {
        while true {
            // Continuations are resumed after the lock is released: a task resumed inside it would start on another
            // thread and spin on the lock its resumer still holds (9% of the relay's CPU at concurrency 1).
            let (taken, reader): ((ByteBuffer?, End?)?, CheckedContinuation<Void, Never>?) = state.withLock { s in
                guard s.bytes != nil || s.end != nil else { return (nil, nil) }
                let out = (s.bytes, s.end)
                s.bytes = nil
                defer { s.reader = nil }
                return (out, s.reader)
            }
            reader?.resume()
            if let taken { return taken }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s in
                    if s.bytes != nil || s.end != nil { return true }
                    s.writer = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    private func append(_ part: ByteBuffer) async {
        let (full, writer) = state.withLock { s in
            if s.bytes == nil {
                s.bytes = part
            } else {
                var part = part
                s.bytes!.writeBuffer(&part)
            }
            defer { s.writer = nil }
            return (s.bytes!.readableBytes >= limit, s.writer)
        }
        writer?.resume()
        guard full else { return }
        // Cancelled (the writer left) while waiting for room: go on, so that the reading task ends.
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let go = state.withLock { s in
                    if s.readerCancelled || (s.bytes?.readableBytes ?? 0) < limit { return true }
                    s.reader = continuation
                    return false
                }
                if go { continuation.resume() }
            }
        } onCancel: {
            state.withLock { s in
                s.readerCancelled = true
                defer { s.reader = nil }
                return s.reader
            }?.resume()
        }
    }

    private func close(_ end: End) {
        state.withLock { s in
            s.end = end
            defer { s.writer = nil }
            return s.writer
        }?.resume()
    }
}
