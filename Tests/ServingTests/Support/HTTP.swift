import AsyncHTTPClient
import Foundation
import NIOCore
import OpenAIAPI

/// Small HTTP helpers over AsyncHTTPClient for talking to real servers on loopback.
enum HTTP {
    struct Reply {
        var status: Int
        var body: String
        var json: JSONValue? { try? JSONDecoder().decode(JSONValue.self, from: Data(body.utf8)) }
    }

    static func post(_ port: Int, _ path: String, _ body: String, headers: [(String, String)] = []) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), body: String(buffer: bytes))
    }

    static func post(_ port: Int, _ path: String, json: JSONValue) async throws -> Reply {
        let data = try JSONEncoder().encode(json)
        return try await post(port, path, String(decoding: data, as: UTF8.self))
    }

    static func get(_ port: Int, _ path: String) async throws -> Reply {
        let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        return Reply(status: Int(response.status.code), body: String(buffer: bytes))
    }

    /// Prometheus text → value per series (`name{labels}`), histograms' buckets included.
    static func metrics(_ port: Int) async throws -> [String: Double] {
        var out: [String: Double] = [:]
        for line in try await get(port, "/metrics").body.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = value
        }
        return out
    }
}

extension JSONValue {
    /// Builds a JSON object from literal-friendly pairs.
    static func obj(_ pairs: [String: JSONValue]) -> JSONValue { .object(pairs) }
    var number: Double? {
        if case .number(let n) = self { return n }
        return nil
    }
}
