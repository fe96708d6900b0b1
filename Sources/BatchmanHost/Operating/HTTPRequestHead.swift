/// The head of an HTTP/1.x request, as much of it as `--http` needs: the method and the path.
/// Read from untrusted bytes with bounds; fuzzed with the other parsers.
struct HTTPRequestHead: Equatable {
    let method: String
    /// The path without its query (`/metrics?x=1` is `/metrics`).
    let path: String

    /// The longest head the server reads; a longer one is refused.
    static let maxBytes = 8192

    enum Parsed: Equatable {
        case request(HTTPRequestHead)
        /// The head has not ended yet (no blank line): read more, up to ``maxBytes``.
        case incomplete
        /// Not an HTTP/1.x request line, or a head past ``maxBytes``.
        case malformed(String)
    }

    static func parse(_ bytes: ArraySlice<UInt8>) -> Parsed {
        guard let end = headEnd(bytes) else {
            return bytes.count > maxBytes ? .malformed("request head longer than \(maxBytes) bytes") : .incomplete
        }
        guard end - bytes.startIndex <= maxBytes else { return .malformed("request head longer than \(maxBytes) bytes") }
        let lineEnd = bytes[bytes.startIndex..<end].firstIndex(of: UInt8(ascii: "\r")) ?? bytes[bytes.startIndex..<end].firstIndex(of: UInt8(ascii: "\n")) ?? end
        let parts = bytes[bytes.startIndex..<lineEnd].split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .malformed("the request line is not METHOD PATH VERSION") }
        let version = parts[2]
        guard version.starts(with: Array("HTTP/1.".utf8)), version.count == 8 else { return .malformed("not an HTTP/1.x request") }
        let method = parts[0]
        guard !method.isEmpty, method.count <= 16, method.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else {
            return .malformed("the method is not a token")
        }
        let target = parts[1]
        guard target.first == UInt8(ascii: "/"), target.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            return .malformed("the target is not an absolute path")
        }
        let path = target.prefix { $0 != UInt8(ascii: "?") }
        return .request(HTTPRequestHead(method: String(decoding: method, as: UTF8.self), path: String(decoding: path, as: UTF8.self)))
    }

    /// Where the head ends (its blank line), whether lines end in CRLF or LF alone.
    private static func headEnd(_ bytes: ArraySlice<UInt8>) -> Int? {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "\n") {
                let next = index + 1
                if next < bytes.endIndex, bytes[next] == UInt8(ascii: "\n") { return next + 1 }
                if next + 1 < bytes.endIndex, bytes[next] == UInt8(ascii: "\r"), bytes[next + 1] == UInt8(ascii: "\n") { return next + 2 }
            }
            index += 1
        }
        return nil
    }
}
