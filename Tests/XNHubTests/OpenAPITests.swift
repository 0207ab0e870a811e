import Foundation
import Logging
import Testing
import XNExec
import XNStore
import Yams

@testable import XNHub

/// The OpenAPI document and the router describe the same API.
@Suite struct OpenAPITests {
    @Test func everyRouteIsDocumentedAndEveryDocumentedRouteExists() throws {
        let configuration = HubConfiguration()
        let store = try SQLiteJobStore(path: nil)
        let scheduler = Scheduler(
            store: store, configuration: configuration, localWorker: nil, logger: Logger(label: "test"))
        let router = buildRouter(
            scheduler: scheduler, store: store, configuration: configuration,
            audit: AuditLog(Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }),
            tokens: TokenRegistry(store: store))
        let served = Set(
            router.routes.map { route -> String in
                let path = route.path.description.split(separator: "/").map { part in
                    part.hasPrefix(":") ? "{\(part.dropFirst())}" : String(part)
                }.joined(separator: "/")
                return "\(route.method.rawValue) /\(path)"
            })
        let yaml = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)
        let document = try #require(try Yams.load(yaml: yaml) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: Any])
        var documented: Set<String> = []
        for (path, item) in paths {
            for method in (item as? [String: Any] ?? [:]).keys
            where ["get", "post", "put", "delete", "patch"].contains(method) {
                documented.insert("\(method.uppercased()) \(path)")
            }
        }
        // The web page's files, its sign-in and its event stream are the page's own, not an API
        // (the README describes them); everything else a client may call is documented.
        let api = served.filter { !$0.contains(" /ui") }
        #expect(api.count == served.count - 7, "the web page's routes: \(served.subtracting(api).sorted())")
        #expect(api.subtracting(documented).isEmpty, "routes missing from openapi.yaml")
        #expect(documented.subtracting(served).isEmpty, "documented routes the hub does not serve")
        #expect(document["openapi"] as? String == "3.1.0")
    }
}
