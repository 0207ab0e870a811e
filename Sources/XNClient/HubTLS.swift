import Foundation
import NIOCore
public import NIOSSL

/// How clients and workers trust a hub over TLS: the system's roots, or a private CA given with
/// `--ca`.
public enum HubTLS {
    /// A client TLS configuration trusting only the CA in `caFile` (PEM); nil: the system roots.
    public static func configuration(caFile: String?) throws(ClientError) -> TLSConfiguration? {
        guard let caFile else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        } catch {
            throw ClientError("cannot read the CA certificate \(caFile) (a PEM file): \(error)")
        }
        tls.minimumTLSVersion = .tlsv12
        return tls
    }

    /// Server name to send for `url`: an IP literal may not be sent as SNI, and the certificate
    /// is checked against the address then (its IP SAN) whatever name goes out.
    public static func serverName(for url: String) -> String? {
        guard let host = URLComponents(string: url)?.host else { return nil }
        return isIPLiteral(host) ? "ip-literal.invalid" : nil
    }

    /// Whether `host` (brackets allowed around IPv6) is an address rather than a name.
    static func isIPLiteral(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return (try? SocketAddress(ipAddress: bare, port: 0)) != nil
    }

    /// A sentence for a TLS failure, or nil when `error` is not one.
    public static func problem(_ error: any Error) -> String? {
        if let error = error as? NIOSSLError {
            let text = String(describing: error)
            if text.contains("CERTIFICATE_VERIFY_FAILED") {
                return "the hub's TLS certificate is not trusted (pass --ca with the CA that signed it)"
            }
            if text.contains("WRONG_VERSION_NUMBER") {
                return "the hub does not speak TLS on this port (use http:// or ws://)"
            }
            return "TLS handshake with the hub failed: \(text)"
        }
        if let error = error as? NIOSSLExtraError {
            if error == .failedToValidateHostname { return "the hub's TLS certificate does not name this host" }
            return "TLS error: \(error)"
        }
        return nil
    }
}
