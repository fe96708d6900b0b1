/// Where the host listens (`--listen`) and where `batchman submit` connects (`--connect`):
/// `unix:PATH`, or `tcp:HOST:PORT` with a numeric address (IPv6 in brackets) or `localhost`.
public enum ServiceAddress: Equatable, Sendable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: UInt16)

    static let forms = "unix:PATH or tcp:HOST:PORT (HOST a numeric address or localhost; PORT 0 picks a free port)"

    /// Reads `text` as given to `option` (named in the error).
    static func parse(_ text: String, option: String) throws(HostError) -> ServiceAddress {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw HostError(.usage, "\(option) \(text): the socket's path is missing; give \(forms)") }
            guard Syscall.SocketAddress(unixPath: path) != nil else {
                throw HostError(.usage, "\(option) \(text): a socket's path is 107 bytes at most (this one is \(path.utf8.count)); use a shorter one")
            }
            return .unix(path: path)
        }
        guard text.hasPrefix("tcp:") else { throw HostError(.usage, "\(option) \(text): expected \(forms)") }
        let rest = text.dropFirst(4)
        guard let colon = rest.lastIndex(of: ":") else { throw HostError(.usage, "\(option) \(text): the port is missing; expected tcp:HOST:PORT") }
        var host = String(rest[..<colon])
        let portText = rest[rest.index(after: colon)...]
        guard let port = UInt16(portText) else { throw HostError(.usage, "\(option) \(text): the port must be a number from 0 to 65535, got \(portText)") }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" { host = "127.0.0.1" }
        guard Syscall.SocketAddress(numericHost: host, port: port) != nil else {
            throw HostError(.usage, "\(option) \(text): \(host) is not a numeric address; give one such as 127.0.0.1 or ::1, or localhost")
        }
        return .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        }
    }

    var socketAddress: Syscall.SocketAddress {
        switch self {
        case .unix(let path): Syscall.SocketAddress(unixPath: path)!
        case .tcp(let host, let port): Syscall.SocketAddress(numericHost: host, port: port)!
        }
    }

    var family: Int32 { socketAddress.family }
}
