import Foundation

/// The error body every OpenAI-compatible endpoint returns: `{"error": {"message", "type", "param", "code"}}`.
public struct OpenAIError: Error, Sendable, Codable, Equatable {
    public struct Detail: Sendable, Codable, Equatable {
        public var message: String
        public var type: String
        public var param: String?
        public var code: Int?
    }

    public var error: Detail

    /// `status` is the HTTP status the error travels with; it is also reported as `code`.
    public init(status: Int, message: String, type: String? = nil, param: String? = nil) {
        error = Detail(message: message, type: type ?? Self.type(for: status), param: param, code: status)
    }

    public var status: Int { error.code ?? 500 }

    /// The JSON bytes of the body.
    public var jsonBytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data(#"{"error":{"message":"internal error"}}"#.utf8))
    }

    static func type(for status: Int) -> String {
        switch status {
        case 400, 404, 413, 422: return "invalid_request_error"
        case 401, 403: return "authentication_error"
        case 429, 503: return "server_overloaded"
        default: return "server_error"
        }
    }
}
