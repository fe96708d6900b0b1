/// Writes JSON string literals: the one place escaping rules live.
enum JSONStringEscaper {
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The most bytes `length` bytes take as a JSON string literal: quotes, and six for one
    /// (`\u00XX`; a byte of invalid UTF-8 takes three, as U+FFFD).
    static func bound(ofLength length: Int) -> Int { 6 * length + 2 }

    /// Writes `bytes` as a JSON string literal. Invalid UTF-8 becomes U+FFFD, so the output is
    /// always valid JSON whatever the input. Needs ``bound(ofLength:)`` bytes of room.
    static func write(_ bytes: UnsafeBufferPointer<UInt8>, to output: inout ByteWriter) {
        output.write(UInt8(ascii: "\""))
        var runStart = 0
        var index = 0
        func flushRun(to end: Int) {
            if end > runStart { output.write(UnsafeBufferPointer(rebasing: bytes[runStart..<end])) }
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
                output.write(0xEF)  // U+FFFD
                output.write(0xBF)
                output.write(0xBD)
                index += 1
                runStart = index
                continue
            }
            flushRun(to: index)
            output.write(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""): output.write(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): output.write(UInt8(ascii: "\\"))
            case 0x0A: output.write(UInt8(ascii: "n"))
            case 0x0D: output.write(UInt8(ascii: "r"))
            case 0x09: output.write(UInt8(ascii: "t"))
            default:
                output.write("u00")
                output.write(hexDigits[Int(byte >> 4)])
                output.write(hexDigits[Int(byte & 0xF)])
            }
            index += 1
            runStart = index
        }
        flushRun(to: index)
        output.write(UInt8(ascii: "\""))
    }

    /// Writes `string` as a JSON string literal (see ``write(_:to:)``).
    static func write(_ string: borrowing String, to output: inout ByteWriter) {
        let written: Void? = string.utf8.withContiguousStorageIfAvailable { write($0, to: &output) }
        if written == nil { Array(string.utf8).withUnsafeBufferPointer { write($0, to: &output) } }
    }

    /// Appends `bytes` as a JSON string literal (see ``write(_:to:)``).
    static func append(_ bytes: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
        ByteWriter.append(to: &output, bound: bound(ofLength: bytes.count)) { write(bytes, to: &$0) }
    }

    static func append(_ string: String, to output: inout [UInt8]) {
        ByteWriter.append(to: &output, bound: bound(ofLength: string.utf8.count)) { write(string, to: &$0) }
    }

    static func append(_ string: String, to output: inout String) {
        var bytes: [UInt8] = []
        append(string, to: &bytes)
        output += String(decoding: bytes, as: UTF8.self)
    }
}
