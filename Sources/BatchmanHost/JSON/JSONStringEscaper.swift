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
