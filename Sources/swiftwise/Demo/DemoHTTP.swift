import AsyncHTTPClient
import Foundation
import NIOCore
import OpenAIAPI

/// The demo's own HTTP needs: health probes and the streamed sample request.
enum DemoHTTP {
    static func healthy(port: Int) async -> Bool {
        let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/health")
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 20)
        return response.status == .ok
    }

    /// Sends a streaming chat request and prints the content as it arrives.
    static func streamChat(port: Int, model: String, prompt: String, maxTokens: Int) async throws {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        let body: JSONValue = .object(["model": .string(model), "stream": .bool(true), "max_tokens": .number(Double(maxTokens)),
                                       "temperature": .number(0), "messages": .array([.object(["role": .string("user"), "content": .string(prompt)])])])
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(300))
        guard response.status == .ok else {
            let text = try await response.body.collect(upTo: 1 << 20)
            throw DemoError("sample request failed: \(response.status.code) \(String(buffer: text))")
        }
        var pending = ""
        for try await chunk in response.body {
            pending += String(buffer: chunk)
            while let end = pending.range(of: "\n\n") {
                let event = pending[..<end.lowerBound]
                pending = String(pending[end.upperBound...])
                guard event.hasPrefix("data: "), !event.hasSuffix("[DONE]") else { continue }
                let json = try? JSONDecoder().decode(JSONValue.self, from: Data(event.dropFirst(6).utf8))
                if let text = json?["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue {
                    FileHandle.standardOutput.write(Data(text.utf8))
                }
            }
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}
