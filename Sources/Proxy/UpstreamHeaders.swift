import Foundation
import AsyncHTTPClient
import HTTPTypes
import NIOHTTP1

/// Header rules for a proxy: hop-by-hop headers (RFC 9110 §7.6.1, and any named in `Connection`) never cross it,
/// and lengths are recomputed for the new message.
enum UpstreamHeaders {
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
        "trailers", "transfer-encoding", "upgrade", "host", "content-length",
    ]

    static let requestIdName = HTTPField.Name("X-Request-Id")!

    /// Client → upstream: everything but hop-by-hop; the request id set; JSON body.
    static func forRequest(_ fields: HTTPFields, requestId: String) -> HTTPHeaders {
        let dropped = droppedNames(connection: fields[.connection])
        var headers = HTTPHeaders()
        for field in fields where !dropped.contains(field.name.canonicalName) && field.name != requestIdName {
            headers.add(name: field.name.rawName, value: field.value)
        }
        headers.replaceOrAdd(name: "X-Request-Id", value: requestId)
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        return headers
    }

    /// Upstream → client: everything but hop-by-hop; the request id set.
    static func forResponse(_ upstream: HTTPHeaders, requestId: String) -> HTTPFields {
        let dropped = droppedNames(connection: upstream.first(name: "connection"))
        var fields = HTTPFields()
        for (name, value) in upstream where !dropped.contains(name.lowercased()) && name.lowercased() != "x-request-id" {
            if let fieldName = HTTPField.Name(name) { fields.append(HTTPField(name: fieldName, value: value)) }
        }
        fields[requestIdName] = requestId
        return fields
    }

    private static func droppedNames(connection: String?) -> Set<String> {
        var names = hopByHop
        for token in (connection ?? "").split(separator: ",") {
            names.insert(token.trimmingCharacters(in: .whitespaces).lowercased())
        }
        return names
    }
}
