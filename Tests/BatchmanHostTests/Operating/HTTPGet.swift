import Foundation

/// A plain HTTP/1.1 request to 127.0.0.1 over a socket of its own, as a scraper sends one.
struct HTTPGet {
    let status: Int
    let headers: String
    let body: String

    /// Sends `method path` to `port` on a thread of its own and reads the whole response.
    static func request(_ path: String, port: UInt16, method: String = "GET", raw: String? = nil) async throws -> HTTPGet {
        try await offThePool { try requestBlocking(path, port: port, method: method, raw: raw) }
    }

    struct Failure: Error { let what: String }

    static func requestBlocking(_ path: String, port: UInt16, method: String = "GET", raw: String? = nil) throws -> HTTPGet {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(what: "connect: errno \(errno)") }
        let request = Array((raw ?? "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").utf8)
        _ = request.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.read(socket, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            response += buffer[..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ").dropFirst().first ?? "") else {
            throw Failure(what: "not an HTTP response: \(text.prefix(200))")
        }
        return HTTPGet(status: status, headers: String(text[..<split.lowerBound]), body: String(text[split.upperBound...]))
    }

    /// The value of one sample of a metric (`name{labels} value`), from an exposition.
    static func sample(_ exposition: String, _ series: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }
}
