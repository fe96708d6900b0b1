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

/// Writes JSON string literals: the one place escaping rules live.
enum JSONStringEscaper {
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `bytes` as a JSON string literal. Invalid UTF-8 becomes U+FFFD, so the output is
    /// always valid JSON whatever the input.
    static func append(_ bytes: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var runStart = 0
        var index = 0
        func flushRun(to end: Int) {
            if end > runStart { output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<end])) }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte >= 0x20, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\"), byte < 0x80 {
                index += 1
                continue
            }
            if byte >= 0x80 {
                let length = JSONScanner.utf8SequenceLength(bytes, at: index)
                if length > 0 {
                    index += length
                    continue
                }
                flushRun(to: index)
                output.append(contentsOf: [0xEF, 0xBF, 0xBD])  // U+FFFD
                index += 1
                runStart = index
                continue
            }
            flushRun(to: index)
            output.append(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""): output.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): output.append(UInt8(ascii: "\\"))
            case 0x0A: output.append(UInt8(ascii: "n"))
            case 0x0D: output.append(UInt8(ascii: "r"))
            case 0x09: output.append(UInt8(ascii: "t"))
            default:
                output.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                           hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]])
            }
            index += 1
            runStart = index
        }
        flushRun(to: index)
        output.append(UInt8(ascii: "\""))
    }

    static func append(_ string: String, to output: inout [UInt8]) {
        var string = string
        string.withUTF8 { append($0, to: &output) }
    }

    static func append(_ string: String, to output: inout String) {
        var bytes: [UInt8] = []
        append(string, to: &bytes)
        output += String(decoding: bytes, as: UTF8.self)
    }
}
