/// A message's headers in NATS's form: `NATS/1.0[ status[ description]]` then `Name: value`
/// lines, each ending in CRLF, and an empty line.
public struct NATSHeaders: Equatable, Sendable {
    /// The status of a status message (404 no messages, 408 request timeout, 409 conflict,
    /// 503 no responders), nil for ordinary headers.
    public var status: Int?
    public var statusDescription: String
    public var fields: [(name: String, value: String)]

    public init(status: Int? = nil, statusDescription: String = "", fields: [(name: String, value: String)] = []) {
        self.status = status
        self.statusDescription = statusDescription
        self.fields = fields
    }

    /// The first value of `name` (names compare without case, as NATS's clients do).
    public subscript(name: String) -> String? {
        let lowered = name.lowercased()
        return fields.first { $0.name.lowercased() == lowered }?.value
    }

    /// The header block as it goes on the wire.
    public var encoded: [UInt8] {
        var text = "NATS/1.0"
        if let status { text += " \(status)" + (statusDescription.isEmpty ? "" : " \(statusDescription)") }
        text += "\r\n"
        for field in fields { text += "\(field.name): \(field.value)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// Parses a header block; nil if it does not start with `NATS/1.0` or a line has no colon.
    public static func parse(_ bytes: ArraySlice<UInt8>) -> NATSHeaders? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: true).makeIterator()
        guard let first = lines.next(), first.hasPrefix("NATS/1.0") else { return nil }
        var headers = NATSHeaders()
        let rest = first.dropFirst("NATS/1.0".count).drop { $0 == " " }
        if !rest.isEmpty {
            let code = rest.prefix { $0.isNumber }
            guard code.count == 3, let status = Int(code) else { return nil }
            headers.status = status
            headers.statusDescription = String(rest.dropFirst(3).drop { $0 == " " })
        }
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            headers.fields.append((String(line[..<colon]).trimmingSpaces, String(line[line.index(after: colon)...]).trimmingSpaces))
        }
        return headers
    }

    public static func == (lhs: NATSHeaders, rhs: NATSHeaders) -> Bool {
        lhs.status == rhs.status && lhs.statusDescription == rhs.statusDescription
            && lhs.fields.map(\.name) == rhs.fields.map(\.name) && lhs.fields.map(\.value) == rhs.fields.map(\.value)
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
