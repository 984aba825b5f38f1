import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OpenAIAPI

/// Runtime membership: `GET /admin/backends`, `POST /admin/backends {"role","url"}`,
/// `DELETE /admin/backends {"role","url"}` (or `?role=&url=`). Behind the API key when one is set.
struct AdminRoutes: Sendable {
    let server: ProxyServer

    private struct Change: Decodable {
        var role: BackendRole
        var url: String
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/admin/backends") { request, _ in
            if let failure = server.authorize(request) { return PDRouter.errorResponse(failure, requestId: nil) }
            return json(server.pool.statuses(), status: .ok)
        }
        router.post("/admin/backends") { request, _ in
            await change(request) { role, url in
                server.pool.add(role: role, url: url) ? (.created, "added") : (.ok, "already present")
            }
        }
        router.delete("/admin/backends") { request, _ in
            await change(request) { role, url in
                server.pool.remove(role: role, url: url) ? (.ok, "removed") : (.notFound, "not present")
            }
        }
    }

    private func change(_ request: Request, _ apply: (BackendRole, URL) -> (HTTPResponse.Status, String)) async -> Response {
        if let failure = server.authorize(request) { return PDRouter.errorResponse(failure, requestId: nil) }
        var request = request
        var change: Change?
        if let role = request.uri.queryParameters["role"].flatMap({ BackendRole(rawValue: String($0)) }),
           let url = request.uri.queryParameters["url"] {
            change = Change(role: role, url: String(url))
        } else if let body = try? await request.collectBody(upTo: 64 << 10) {
            change = try? JSONDecoder().decode(Change.self, from: Data(body.readableBytesView))
        }
        guard let change else {
            return PDRouter.errorResponse(OpenAIError(status: 400, message: #"expected {"role": "prefill"|"decode", "url": "http://host:port"}"#),
                                          requestId: nil)
        }
        let url: URL
        do {
            url = try Endpoints.parseOne(change.url)
        } catch {
            return PDRouter.errorResponse(OpenAIError(status: 400, message: "\(error)"), requestId: nil)
        }
        let (status, outcome) = apply(change.role, url)
        server.logger.notice("admin: \(change.role.rawValue) node \(url) \(outcome)")
        return json(["role": change.role.rawValue, "url": url.absoluteString, "result": outcome], status: status)
    }

    private func json(_ value: some Encodable, status: HTTPResponse.Status) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let bytes = (try? encoder.encode(value)) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
