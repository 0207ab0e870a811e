import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// How the web page signs in: the token it was given becomes an HttpOnly, SameSite=Strict cookie,
/// so the page's script never holds it (an injected script cannot send it elsewhere) and the
/// browser sends it on the attach WebSocket and the event stream, which cannot carry a header.
/// A cookie is ambient, so a request that changes something must also carry the CSRF value, which
/// only a page of this hub can read (`GET /ui/session`). It is derived from the token, so a signed-in
/// page keeps working across a hub restart and nothing about sessions is stored.
enum BrowserSession {
    static let cookieName = "xn_session"
    static let csrfHeader = HTTPField.Name("X-XN-CSRF")!

    /// The credential of a request: its Authorization header, else its session cookie as a
    /// bearer token (`viaCookie`: then a change needs the CSRF header).
    static func credential(of request: Request) -> (authorization: String?, viaCookie: Bool) {
        if let header = request.headers[.authorization] { return (header, false) }
        guard let value = request.cookies[cookieName]?.value, !value.isEmpty else { return (nil, false) }
        return ("Bearer " + value, true)
    }

    /// The CSRF value of a session: a keyed hash of its token, useless for signing in.
    static func csrf(forAuthorization authorization: String) -> String {
        let secret = authorization.split(separator: " ", maxSplits: 1).last.map(String.init) ?? ""
        let code = HMAC<SHA256>.authenticationCode(
            for: Data("xn web page csrf".utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return code.prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// Why a cookie-authenticated request may not change anything, or nil.
    static func csrfRefusal(_ request: Request, authorization: String) -> String? {
        guard request.method != .get, request.method != .head else { return nil }
        guard let sent = request.headers[csrfHeader] else {
            return "a signed-in page must send its X-XN-CSRF value with every change (reload the page)"
        }
        // Compared in constant time: the value is a secret of the session.
        let expected = Array(csrf(forAuthorization: authorization).utf8)
        let given = Array(sent.utf8)
        guard given.count == expected.count else { return "the X-XN-CSRF value is wrong (reload the page)" }
        var difference: UInt8 = 0
        for (a, b) in zip(given, expected) { difference |= a ^ b }
        return difference == 0 ? nil : "the X-XN-CSRF value is wrong (reload the page)"
    }

    /// The cookie that signs a browser in; `secure` when the hub serves HTTPS.
    static func cookie(token: String, secure: Bool) -> Cookie {
        Cookie(name: cookieName, value: token, path: "/", secure: secure, httpOnly: true, sameSite: .strict)
    }

    /// The cookie that signs it out.
    static func expiredCookie(secure: Bool) -> Cookie {
        Cookie(name: cookieName, value: "", maxAge: 0, path: "/", secure: secure, httpOnly: true, sameSite: .strict)
    }
}
