/// One server to connect to: `nats://[user:password@|token@]host:port` (the scheme and port
/// are optional: `nats://`, 4222). Numeric IPv4 and IPv6 hosts and `localhost` only: the host
/// never resolves names, so a list says exactly where it connects.
public struct NATSServerURL: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var user: String?
    public var password: String?
    public var token: String?

    public init(host: String, port: UInt16, user: String? = nil, password: String? = nil, token: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.token = token
    }

    /// Without credentials, for logs.
    public var description: String { "nats://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    /// Parses a comma-separated list, as `--server` and `--nats` take it.
    public static func parseList(_ text: String) throws(NATSError) -> [NATSServerURL] {
        let parts = text.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
        guard !parts.isEmpty else { throw NATSError.usage("no NATS server given (nats://HOST:PORT, comma-separated)") }
        var servers: [NATSServerURL] = []
        for part in parts { servers.append(try parse(part)) }
        return servers
    }

    public static func parse(_ text: String) throws(NATSError) -> NATSServerURL {
        var rest = Substring(text)
        if let scheme = rest.firstRange(of: "://") {
            guard rest[..<scheme.lowerBound] == "nats" else {
                throw NATSError.usage("\(text): only nats:// servers (TLS is not built in: run a local leaf node, see the README)")
            }
            rest = rest[scheme.upperBound...]
        }
        var url = NATSServerURL(host: "", port: 4222)
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                url.user = String(credentials[..<colon]).removingPercentEncoding
                url.password = String(credentials[credentials.index(after: colon)...]).removingPercentEncoding
            } else {
                url.token = String(credentials).removingPercentEncoding
            }
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        var hostPart = rest
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw NATSError.usage("\(text): an IPv6 host without its ]") }
            url.host = String(rest[rest.index(after: rest.startIndex)..<close])
            hostPart = rest[rest.index(after: close)...]
            if hostPart.hasPrefix(":") { hostPart = hostPart.dropFirst() } else if !hostPart.isEmpty { throw NATSError.usage("\(text): text after the host") }
            if !hostPart.isEmpty { url.port = try port(hostPart, in: text) }
        } else if let colon = rest.lastIndex(of: ":") {
            url.host = String(rest[..<colon])
            url.port = try port(rest[rest.index(after: colon)...], in: text)
        } else {
            url.host = String(rest)
        }
        if url.host == "localhost" { url.host = "127.0.0.1" }
        guard !url.host.isEmpty else { throw NATSError.usage("\(text): no host") }
        guard NATSSocket.isNumericHost(url.host) else {
            throw NATSError.usage("\(text): the host must be a numeric address or localhost (names are not resolved)")
        }
        return url
    }

    private static func port(_ text: Substring, in whole: String) throws(NATSError) -> UInt16 {
        guard let port = UInt16(text), port > 0 else { throw NATSError.usage("\(whole): the port must be a number from 1 to 65535") }
        return port
    }
}

extension String {
    /// `%XX` escapes decoded (credentials in a URL); nil if one is malformed.
    var removingPercentEncoding: String? {
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next(), let low = iterator.next(), let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            else { return nil }
            bytes.append(value)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
