/// One accepted input line in a spool segment.
///
/// On disk, little-endian: `length: UInt32` (of the line), `crc: UInt32` (CRC-32C of everything
/// after it), `sequence: UInt64`, `inputEnd: UInt64` (the input file's offset just after the
/// line, 0 for a pipe), `lineNumber: UInt64` (its top bit set for a line a client sent over
/// `--listen`: after a crash nobody waits for its result), then the line's bytes. A record is valid only whole and with its
/// checksum: a torn write (power cut) or a flipped bit shows as an invalid record.
struct SpoolRecord: Equatable {
    static let headerSize = 32
    /// No input line is longer (the host's --max-line-bytes is below it); a larger length field
    /// is damage, not a record.
    static let maxLineBytes = 1 << 30

    /// The top bit of `lineNumber`: the line came from a client's connection.
    static let fromClientBit: UInt64 = 1 << 63

    static func clientLineNumber(_ number: Int) -> Int { Int(bitPattern: UInt(UInt64(number) | fromClientBit)) }
    static func isFromClient(_ lineNumber: UInt64) -> Bool { lineNumber & fromClientBit != 0 }
    static func lineNumber(_ lineNumber: UInt64) -> UInt64 { lineNumber & ~fromClientBit }

    let sequence: UInt64
    let inputEnd: UInt64
    let lineNumber: UInt64
    let line: [UInt8]

    /// Appends the record's bytes to `output`.
    func encode(into output: inout [UInt8]) {
        var body: [UInt8] = []
        body.reserveCapacity(24 + line.count)
        Self.appendLittleEndian(sequence, to: &body)
        Self.appendLittleEndian(inputEnd, to: &body)
        Self.appendLittleEndian(lineNumber, to: &body)
        body += line
        Self.appendLittleEndian(UInt32(line.count), to: &output)
        Self.appendLittleEndian(CRC32C.checksum(body), to: &output)
        output += body
    }

    /// What is at `offset` of a segment's bytes.
    enum Decoded: Equatable {
        case record(SpoolRecord, next: Int)
        /// The bytes end before the record does: a write cut short (only possible at the tail).
        case truncated
        /// A whole record whose checksum or length is wrong: damage. `next` is where the record
        /// would end if its length is to be believed (nil if it is not).
        case corrupt(next: Int?)
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Decoded {
        guard bytes.count - offset >= headerSize else { return .truncated }
        let length = Int(readLittleEndian(UInt32.self, bytes, offset))
        guard length <= maxLineBytes else { return .corrupt(next: nil) }
        let end = offset + headerSize + length
        guard end <= bytes.count else { return .truncated }
        let crc = readLittleEndian(UInt32.self, bytes, offset + 4)
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[(offset + 8)..<end])) == crc else { return .corrupt(next: end) }
        let record = SpoolRecord(
            sequence: readLittleEndian(UInt64.self, bytes, offset + 8),
            inputEnd: readLittleEndian(UInt64.self, bytes, offset + 16),
            lineNumber: readLittleEndian(UInt64.self, bytes, offset + 24),
            line: Array(bytes[(offset + headerSize)..<end]))
        return .record(record, next: end)
    }

    static func appendLittleEndian<Integer: FixedWidthInteger>(_ value: Integer, to output: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { output.append(contentsOf: $0) }
    }

    static func readLittleEndian<Integer: FixedWidthInteger>(_ type: Integer.Type, _ bytes: UnsafeRawBufferPointer, _ offset: Int) -> Integer {
        Integer(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Integer.self))
    }
}
