/// One input line, read by a focused scanner: `key` and `id` are decoded, the payload is only
/// located (its raw JSON text goes to the plugin as is), and other fields are skipped. The
/// whole line is still validated as JSON.
enum JobLine: Equatable {
    case job(key: String, id: String, payload: Range<Int>)
    /// An empty or all-whitespace line: not a job, not an error.
    case blank
    /// What is wrong, and the key and id if they were read before the problem was found.
    case invalid(message: String, key: String?, id: String?)

    private enum Field { case key, id, payload, other }

    static func parse(_ line: UnsafeBufferPointer<UInt8>) -> JobLine {
        var scanner = JSONScanner(line)
        scanner.skipWhitespace()
        if scanner.isAtEnd { return .blank }
        var key: String?, id: String?, payload: Range<Int>?
        do throws(JobLineError) {
            guard scanner.consume(UInt8(ascii: "{")) else {
                throw .problem("expected a JSON object like {\"key\":\"k\",\"id\":\"1\",\"payload\":{}}")
            }
            if !scanner.consume(UInt8(ascii: "}")) {
                repeat {
                    let name = try syntax { () throws(JSONSyntaxError) in try scanner.scanString() }
                    try syntax { () throws(JSONSyntaxError) in try scanner.expect(UInt8(ascii: ":"), "':' after a field name") }
                    scanner.skipWhitespace()
                    switch field(name, in: scanner) {
                    case .key:
                        guard key == nil else { throw .problem("\"key\" is given twice") }
                        key = try nonEmptyString("key", &scanner)
                    case .id:
                        guard id == nil else { throw .problem("\"id\" is given twice") }
                        id = try nonEmptyString("id", &scanner)
                    case .payload:
                        guard payload == nil else { throw .problem("\"payload\" is given twice") }
                        let start = scanner.index
                        try syntax { () throws(JSONSyntaxError) in try scanner.skipValue() }
                        payload = start..<scanner.index
                    case .other:
                        try syntax { () throws(JSONSyntaxError) in try scanner.skipValue() }
                    }
                } while scanner.consume(UInt8(ascii: ","))
                try syntax { () throws(JSONSyntaxError) in try scanner.expect(UInt8(ascii: "}"), "',' or '}'") }
            }
            scanner.skipWhitespace()
            guard scanner.isAtEnd else { throw .problem("unexpected text after the object at byte \(scanner.index + 1)") }
            guard let key else { throw .problem("missing \"key\" (a string)") }
            guard let id else { throw .problem("missing \"id\" (a string)") }
            guard let payload else { throw .problem("missing \"payload\" (any JSON value)") }
            return .job(key: key, id: id, payload: payload)
        } catch {
            return .invalid(message: error.message, key: key, id: id)
        }
    }

    private static func field(_ name: (range: Range<Int>, hasEscapes: Bool), in scanner: borrowing JSONScanner) -> Field {
        guard !name.hasEscapes else {
            // `"k\u0065y"` is the field `key` too: decode the (rare) escaped name and compare.
            var nameScanner = JSONScanner(UnsafeBufferPointer(rebasing: scanner.bytes[(name.range.lowerBound - 1)...]))
            switch try? nameScanner.readString() {
            case "key": return .key
            case "id": return .id
            case "payload": return .payload
            default: return .other
            }
        }
        if scanner.bytes(in: name.range, equal: "key") { return .key }
        if scanner.bytes(in: name.range, equal: "id") { return .id }
        if scanner.bytes(in: name.range, equal: "payload") { return .payload }
        return .other
    }

    private static func nonEmptyString(_ name: String, _ scanner: inout JSONScanner) throws(JobLineError) -> String {
        guard scanner.current == UInt8(ascii: "\"") else {
            let start = scanner.index
            try syntax { () throws(JSONSyntaxError) in try scanner.skipValue() }
            let found = String(decoding: UnsafeBufferPointer(rebasing: scanner.bytes[start..<scanner.index]), as: UTF8.self)
            throw .problem("\"\(name)\" must be a string, got \(found.prefix(40))")
        }
        // One scan validates the string (its syntax errors read like every other); only a string
        // with escapes is read again, to decode them.
        let start = scanner
        let (range, hasEscapes) = try syntax { () throws(JSONSyntaxError) in try scanner.scanString() }
        let value: String
        if hasEscapes {
            var decoder = start
            do {
                value = try decoder.readString(rejectingLoneSurrogates: true)
            } catch {
                throw .problem("\"\(name)\" is not valid: \(error.message) at byte \(error.offset + 1); send \(name)s as valid Unicode")
            }
        } else {
            value = String(decoding: UnsafeBufferPointer(rebasing: scanner.bytes[range]), as: UTF8.self)
        }
        guard !value.isEmpty else { throw .problem("\"\(name)\" must not be empty") }
        return value
    }

    private static func syntax<Value>(_ body: () throws(JSONSyntaxError) -> Value) throws(JobLineError) -> Value {
        do {
            return try body()
        } catch {
            throw .problem("not valid JSON: \(error.message) at byte \(error.offset + 1)")
        }
    }
}

private struct JobLineError: Error {
    let message: String
    static func problem(_ message: String) -> JobLineError { JobLineError(message: message) }
}
