/// A parsed JSON document, for the manifest (never the hot path). Object members keep their
/// order, and numbers keep their text so they round-trip exactly.
indirect enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([Member])

    struct Member: Hashable, Sendable {
        let key: String
        let value: JSONValue
    }

    /// Parses one JSON document from `bytes`.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> JSONValue {
        var scanner = JSONScanner(bytes)
        let value = try parseValue(&scanner, depth: 0)
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { throw scanner.error("unexpected text after the document") }
        return value
    }

    private static func parseValue(_ scanner: inout JSONScanner, depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth < 512 else { throw scanner.error("nested deeper than 512 levels") }
        scanner.skipWhitespace()
        switch scanner.current {
        case UInt8(ascii: "\""):
            return .string(try scanner.readString())
        case UInt8(ascii: "{"):
            _ = scanner.consume(UInt8(ascii: "{"))
            var members: [Member] = []
            if scanner.consume(UInt8(ascii: "}")) { return .object(members) }
            repeat {
                let key = try scanner.readString()
                try scanner.expect(UInt8(ascii: ":"), "':' after an object key")
                members.append(Member(key: key, value: try parseValue(&scanner, depth: depth + 1)))
            } while scanner.consume(UInt8(ascii: ","))
            try scanner.expect(UInt8(ascii: "}"), "',' or '}' in an object")
            return .object(members)
        case UInt8(ascii: "["):
            _ = scanner.consume(UInt8(ascii: "["))
            var elements: [JSONValue] = []
            if scanner.consume(UInt8(ascii: "]")) { return .array(elements) }
            repeat {
                elements.append(try parseValue(&scanner, depth: depth + 1))
            } while scanner.consume(UInt8(ascii: ","))
            try scanner.expect(UInt8(ascii: "]"), "',' or ']' in an array")
            return .array(elements)
        case UInt8(ascii: "t"):
            try scanner.scanLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try scanner.scanLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try scanner.scanLiteral("null")
            return .null
        case .some(UInt8(ascii: "-")), .some(UInt8(ascii: "0")...UInt8(ascii: "9")):
            let range = try scanner.scanNumber()
            return .number(String(decoding: UnsafeBufferPointer(rebasing: scanner.bytes[range]), as: UTF8.self))
        default:
            throw scanner.error("expected a value")
        }
    }

    /// The value as compact JSON text.
    var jsonText: String {
        var output = ""
        write(to: &output)
        return output
    }

    /// What the value is, for error messages: "a string", "an object", ...
    var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .number(let text): "the number \(text)"
        case .string(let text): "the string \"\(text)\""
        case .array: "an array"
        case .object: "an object"
        }
    }

    private func write(to output: inout String) {
        switch self {
        case .null: output += "null"
        case .bool(let value): output += value ? "true" : "false"
        case .number(let text): output += text
        case .string(let text): JSONStringEscaper.append(text, to: &output)
        case .array(let elements):
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += "," }
                element.write(to: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            for (index, member) in members.enumerated() {
                if index > 0 { output += "," }
                JSONStringEscaper.append(member.key, to: &output)
                output += ":"
                member.value.write(to: &output)
            }
            output += "}"
        }
    }
}
