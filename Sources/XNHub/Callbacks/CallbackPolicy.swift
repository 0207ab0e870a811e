import Foundation

/// Where callbacks may go: `--callback-hosts` entries (host names, IP addresses, CIDR networks),
/// checked at submission against the URL and at delivery against the address actually connected
/// to, so a name that resolves elsewhere by then (DNS rebinding) cannot pass.
///
/// Whatever the list, link-local addresses (169.254.0.0/16, fe80::/10, where cloud metadata
/// services answer), the metadata addresses outside them and the unspecified addresses are
/// refused unless an entry names them as addresses or networks.
struct CallbackPolicy: Sendable {
    /// A network from an entry: its address bytes (4 or 16) and prefix length.
    struct Network: Sendable, Equatable {
        let bytes: [UInt8]
        let prefix: Int

        /// `text` as an address or `address/prefix`; nil when it is neither.
        init?(_ text: String) {
            let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
            guard let bytes = CallbackPolicy.addressBytes(parts[0]) else { return nil }
            let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
            guard let prefix, (0...bytes.count * 8).contains(prefix) else { return nil }
            self.bytes = bytes
            self.prefix = prefix
        }

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var bits = prefix
            for (mine, theirs) in zip(bytes, address) where bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xff : ~(0xff >> UInt8(bits))
                if mine & mask != theirs & mask { return false }
                bits -= 8
            }
            return true
        }
    }

    let names: Set<String>
    let networks: [Network]

    /// Entries as given to `--callback-hosts` (already lowercase); an entry with a `/` that is no
    /// network is returned in `invalid`.
    init(_ entries: Set<String>) {
        var names: Set<String> = []
        var networks: [Network] = []
        for entry in entries {
            if let network = Network(entry) {
                networks.append(network)
            } else if !entry.contains("/") {
                names.insert(entry)
            }
        }
        self.names = names
        self.networks = networks
    }

    /// Entries that are neither a host name nor an address or network.
    static func invalidEntries(_ entries: [String]) -> [String] {
        entries.filter { $0.contains("/") && Network($0) == nil }
    }

    var allowsAny: Bool { names.isEmpty && networks.isEmpty }

    /// Why a job may not have `url` as its callback, as far as the URL alone tells.
    func refusal(ofURL url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            ["http", "https"].contains(scheme), let host = components.host?.lowercased(), !host.isEmpty
        else { return "callback must be an http or https URL with a host" }
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if let address = Self.addressBytes(bare) { return refusal(host: bare, address: address) }
        if allowsAny || names.contains(bare) { return nil }
        // A name the list does not hold may still resolve into one of its networks (not into
        // a single address: whoever lists one address names the hosts that have it too).
        if networks.contains(where: { $0.prefix < $0.bytes.count * 8 }) { return nil }
        return "callback host '\(bare)' is not in the hub's callback hosts"
    }

    /// Why the hub may not call `host` at `address` (4 or 16 bytes), or nil when it may.
    func refusal(host: String, address: [UInt8]) -> String? {
        let address = Self.unmapped(address)
        let text = Self.text(address)
        let named = networks.contains { $0.contains(address) }
        if let kind = Self.sensitiveKind(address), !named {
            return "\(describe(host, text)) is \(kind); name it in --callback-hosts to allow callbacks there"
        }
        if allowsAny || named || names.contains(host) { return nil }
        return "\(describe(host, text)), which --callback-hosts does not allow"
    }

    private func describe(_ host: String, _ address: String) -> String {
        host == address ? address : "\(host) resolves to \(address)"
    }

    /// What kind of address only a scanner would call back to, or nil.
    static func sensitiveKind(_ address: [UInt8]) -> String? {
        if address.count == 4 {
            if address[0] == 169 && address[1] == 254 { return "link-local (cloud metadata services answer there)" }
            if address == [100, 100, 100, 200] { return "a cloud metadata service" }
            if address[0] == 0 { return "unspecified" }
        } else if address.count == 16 {
            if address[0] == 0xfe && address[1] & 0xc0 == 0x80 { return "link-local" }
            if address == [0xfd, 0, 0, 0xec, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x54] {
                return "a cloud metadata service"
            }
            if address.allSatisfy({ $0 == 0 }) { return "unspecified" }
        }
        return nil
    }

    /// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is.
    static func unmapped(_ address: [UInt8]) -> [UInt8] {
        guard address.count == 16, address[0..<10].allSatisfy({ $0 == 0 }), address[10] == 0xff, address[11] == 0xff
        else { return address }
        return Array(address[12...])
    }

    static func addressBytes(_ text: String) -> [UInt8]? {
        switch HubConfiguration.ipAddress(text) {
        case .v4(let bytes): [bytes.0, bytes.1, bytes.2, bytes.3]
        case .v6(let bytes): bytes
        case nil: nil
        }
    }

    static func text(_ address: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let family = address.count == 4 ? AF_INET : AF_INET6
        let ok = address.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return ok == nil
            ? "?" : String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
