/// A JSON syntax error at a byte offset.
struct JSONSyntaxError: Error, Hashable {
    let offset: Int
    let message: String
}

/// A validating, allocation-free JSON scanner over bytes: the host's hot path reads job lines
/// with it, and the manifest parser builds on it. It checks the full grammar (RFC 8259),
/// including UTF-8 inside strings.
/// It borrows `bytes`: use it only while they are alive.
struct JSONScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    private(set) var index: Int

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        self.index = 0
    }

    var isAtEnd: Bool { index >= bytes.count }
    var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(offset: index, message: message) }

    mutating func skipWhitespace() {
        // Most tokens have no whitespace before them: one compare, and no store, for those.
        guard index < bytes.count, bytes[index] <= UInt8(ascii: " ") else { return }
        var position = index
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): position += 1
            default:
                index = position
                return
            }
        }
        index = position
    }

    /// Consumes `byte` (after whitespace) or throws "expected <what>".
    mutating func expect(_ byte: UInt8, _ what: String) throws(JSONSyntaxError) {
        skipWhitespace()
        guard current == byte else { throw error("expected \(what)") }
        index += 1
    }

    /// Consumes `byte` after whitespace if it is next.
    mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        guard current == byte else { return false }
        index += 1
        return true
    }

    /// Scans a string and returns the range of its contents (between the quotes) and whether
    /// it has escapes. The contents are validated, escapes and UTF-8 included.
    mutating func scanString() throws(JSONSyntaxError) -> (range: Range<Int>, hasEscapes: Bool) {
        skipWhitespace()
        guard current == UInt8(ascii: "\"") else { throw error("expected a string") }
        let start = index + 1
        // A local cursor, written back at the exits: `index` is stored, and a store per byte
        // was most of this loop's time (by perf, on the host's reader).
        var position = start
        var hasEscapes = false
        while position < bytes.count {
            let byte = bytes[position]
            // Printable ASCII other than a quote or a backslash, the common case, first.
            if byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
                position += 1
                continue
            }
            index = position
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return (start..<position, hasEscapes)
            case UInt8(ascii: "\\"):
                hasEscapes = true
                try scanEscape()
            case 0..<0x20:
                throw error("control character in a string (escape it)")
            default:
                try scanUTF8Sequence()
            }
            position = index
        }
        index = position
        throw JSONSyntaxError(offset: start - 1, message: "unterminated string")
    }

    /// Scans a string and decodes it. A lone surrogate escape (`\ud800` without its pair) has
    /// no place in a Swift string: it becomes U+FFFD, or with `rejectingLoneSurrogates` it is
    /// an error (for names, where two different ones must not become the same).
    mutating func readString(rejectingLoneSurrogates: Bool = false) throws(JSONSyntaxError) -> String {
        let (range, hasEscapes) = try scanString()
        let contents = UnsafeBufferPointer(rebasing: bytes[range])
        guard hasEscapes else { return String(decoding: contents, as: UTF8.self) }
        let (decoded, loneSurrogate) = Self.unescape(contents)
        if rejectingLoneSurrogates, let loneSurrogate {
            throw JSONSyntaxError(offset: range.lowerBound + loneSurrogate.offset,
                                  message: "lone surrogate \\u\(String(loneSurrogate.code, radix: 16)) is not valid Unicode")
        }
        return decoded
    }

    /// Whether the string at `range` (no escapes) equals `literal`.
    func bytes(in range: Range<Int>, equal literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        let pointer = literal.utf8Start
        for offset in 0..<range.count where bytes[range.lowerBound + offset] != pointer[offset] { return false }
        return true
    }

    /// Scans any JSON value, validating it.
    mutating func skipValue(depth: Int = 0) throws(JSONSyntaxError) {
        guard depth < 512 else { throw error("nested deeper than 512 levels") }
        skipWhitespace()
        guard let byte = current else { throw error("expected a value") }
        switch byte {
        case UInt8(ascii: "\""):
            _ = try scanString()
        case UInt8(ascii: "{"):
            index += 1
            if consume(UInt8(ascii: "}")) { return }
            repeat {
                _ = try scanString()
                try expect(UInt8(ascii: ":"), "':' after an object key")
                try skipValue(depth: depth + 1)
            } while consume(UInt8(ascii: ","))
            try expect(UInt8(ascii: "}"), "',' or '}' in an object")
        case UInt8(ascii: "["):
            index += 1
            if consume(UInt8(ascii: "]")) { return }
            repeat {
                try skipValue(depth: depth + 1)
            } while consume(UInt8(ascii: ","))
            try expect(UInt8(ascii: "]"), "',' or ']' in an array")
        case UInt8(ascii: "t"): try scanLiteral("true")
        case UInt8(ascii: "f"): try scanLiteral("false")
        case UInt8(ascii: "n"): try scanLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try scanNumber()
        default: throw error("expected a value")
        }
    }

    /// Scans a number and returns its text's range.
    @discardableResult
    mutating func scanNumber() throws(JSONSyntaxError) -> Range<Int> {
        skipWhitespace()
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, isDigit(first) else { throw error("expected a digit") }
        index += 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if current == UInt8(ascii: ".") {
            index += 1
            guard let digit = current, isDigit(digit) else { throw error("expected a digit after '.'") }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let digit = current, isDigit(digit) else { throw error("expected a digit in the exponent") }
            skipDigits()
        }
        return start..<index
    }

    mutating func scanLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
        skipWhitespace()
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count, bytes(in: index..<index + count, equal: literal) else {
            throw error("expected a value")
        }
        index += count
    }

    /// Whether `bytes` is exactly one JSON value, with optional whitespace around it.
    static func isValidJSON(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var scanner = JSONScanner(bytes)
        do {
            try scanner.skipValue()
        } catch {
            return false
        }
        scanner.skipWhitespace()
        return scanner.isAtEnd
    }

    // MARK: - Internals

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private mutating func skipDigits() {
        while let byte = current, isDigit(byte) { index += 1 }
    }

    private mutating func scanEscape() throws(JSONSyntaxError) {
        index += 1
        guard let escaped = current else { throw error("unterminated escape") }
        switch escaped {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
             UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            index += 1
        case UInt8(ascii: "u"):
            index += 1
            for _ in 0..<4 {
                guard let hex = current, Self.hexValue(hex) != nil else { throw error("expected 4 hex digits after \\u") }
                index += 1
            }
        default:
            throw error("invalid escape")
        }
    }

    private mutating func scanUTF8Sequence() throws(JSONSyntaxError) {
        let length = Self.utf8SequenceLength(bytes, at: index)
        guard length > 0 else { throw error("invalid UTF-8") }
        index += length
    }

    /// The length of the valid multi-byte UTF-8 sequence at `index`, or 0 if it is invalid
    /// (overlong, a surrogate, beyond U+10FFFF, or cut short).
    static func utf8SequenceLength(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int {
        let length: Int
        var lowest: UInt8 = 0x80, highest: UInt8 = 0xBF
        switch bytes[index] {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; lowest = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; highest = 0x9F
        case 0xF0: length = 4; lowest = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; highest = 0x8F
        default: return 0
        }
        guard index + length <= bytes.count else { return 0 }
        let second = bytes[index + 1]
        guard second >= lowest, second <= highest else { return 0 }
        for offset in 2..<max(length, 2) where bytes[index + offset] & 0xC0 != 0x80 { return 0 }
        return length
    }

    static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// Decodes the contents of a string already validated by `scanString`; also returns the
    /// first lone surrogate (replaced by U+FFFD) and its offset in `contents`.
    private static func unescape(_ contents: UnsafeBufferPointer<UInt8>) -> (String, loneSurrogate: (code: UInt32, offset: Int)?) {
        var loneSurrogate: (code: UInt32, offset: Int)?
        var decoded: [UInt8] = []
        decoded.reserveCapacity(contents.count)
        var index = 0
        func hex4(_ at: Int) -> UInt32 {
            (0..<4).reduce(0) { $0 << 4 | hexValue(contents[at + $1])! }
        }
        while index < contents.count {
            let byte = contents[index]
            guard byte == UInt8(ascii: "\\") else {
                decoded.append(byte)
                index += 1
                continue
            }
            let escaped = contents[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0C)
            case UInt8(ascii: "n"): decoded.append(0x0A)
            case UInt8(ascii: "r"): decoded.append(0x0D)
            case UInt8(ascii: "t"): decoded.append(0x09)
            case UInt8(ascii: "u"):
                var code = hex4(index)
                index += 4
                if (0xD800...0xDBFF).contains(code), index + 6 <= contents.count,
                   contents[index] == UInt8(ascii: "\\"), contents[index + 1] == UInt8(ascii: "u") {
                    let low = hex4(index + 2)
                    if (0xDC00...0xDFFF).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        index += 6
                    }
                }
                // A lone surrogate cannot be represented in a Swift string: U+FFFD stands in.
                if Unicode.Scalar(code) == nil, loneSurrogate == nil { loneSurrogate = (code, index - 6) }
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                decoded.append(contentsOf: String(scalar).utf8)
            default: decoded.append(escaped)
            }
        }
        return (String(decoding: decoded, as: UTF8.self), loneSurrogate)
    }
}
