import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import XNProtocol

/// Builds the hub's JSON and byte responses.
enum Responses {
    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data(#"{"message":"cannot encode response"}"#.utf8)
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A job view, written by hand as `json` would write it (`JobView.json()`).
    static func json(_ status: HTTPResponse.Status, _ view: JobView) -> Response {
        text(status, view.json(), contentType: "application/json; charset=utf-8")
    }

    /// A page of job views, written by hand as `json` would write it.
    static func json(_ status: HTTPResponse.Status, _ page: JobPage) -> Response {
        text(status, page.json(), contentType: "application/json; charset=utf-8")
    }

    /// A job in http-runner's shape and key order.
    static func compat(_ status: HTTPResponse.Status, _ job: CompatJob) -> Response {
        text(status, job.json(), contentType: "application/json; charset=utf-8")
    }

    /// A v1 error: `{"error":{"code","message","field"}}`.
    static func error(
        _ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil
    ) -> Response {
        json(status, APIErrorBody(code: code, message: message, field: field))
    }

    static func text(_ status: HTTPResponse.Status, _ text: [UInt8], contentType: String) -> Response {
        Response(
            status: status, headers: [.contentType: contentType],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
    }
}

/// A request body over the hub's limit.
struct BodyTooLarge: Error {}

extension Request {
    /// The whole body, or `BodyTooLarge` once it passes `limit` bytes.
    mutating func body(upTo limit: Int) async throws -> ByteBuffer {
        do {
            return try await collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw BodyTooLarge()
        }
    }
}

/// The answer of `GET /healthz` and `GET /readyz`: nothing beyond whether the hub serves.
struct Health: Encodable {
    var status: String
    var reason: String?
}
