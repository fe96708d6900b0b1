#if canImport(Glibc)
import Glibc
#endif

/// Writes bytes into a buffer sized beforehand for the worst case, one bound check per piece
/// rather than the work of an `Array.append` per piece: a result line is some twenty-five
/// pieces, and those appends were most of the plugin thread's time, by perf.
///
/// Memory-safe: every write checks that it fits (a `precondition`, one comparison), so a wrong
/// bound stops the process rather than writing past the buffer.
struct ByteWriter {
    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    /// Bytes written so far.
    private(set) var count = 0

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        base = buffer.baseAddress ?? UnsafeMutablePointer(bitPattern: 1)!  // an empty buffer is never written
        capacity = buffer.count
    }

    /// Writes into `bytes`'s spare room: at most `bound` bytes, which `body` must not exceed.
    ///
    /// The room is added uninitialized (bytes need no initializing) and only what `body` wrote is
    /// counted. It used to be zero-filled with `append(contentsOf: repeatElement(0, count:))` and
    /// trimmed after: the whole worst case cleared for every batch, and in a debug build that
    /// generic append ran element by element, 78% of the host's time by perf (tests of a
    /// million lines through the debug host took minutes).
    static func append(to bytes: inout [UInt8], bound: Int, _ body: (inout ByteWriter) -> Void) {
        bytes.append(addingCapacity: bound) { span in
            span.withUnsafeMutableBufferPointer { room, initialized in
                var writer = ByteWriter(room)
                body(&writer)
                initialized = writer.count
            }
        }
    }

    private func reserve(_ length: Int) {
        precondition(length <= capacity - count, "ByteWriter: \(length) bytes do not fit in the \(capacity - count) left")
    }

    mutating func write(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        reserve(bytes.count)
        memcpy(base + count, source, bytes.count)
        count += bytes.count
    }

    mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) {
        write(UnsafeRawBufferPointer(bytes))
    }

    mutating func write(_ text: StaticString) {
        write(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Writes `value` in decimal.
    mutating func write(decimal value: UInt64) {
        reserve(20)
        var remaining = value
        var digits = 0
        repeat {
            digits += 1
            remaining /= 10
        } while remaining > 0
        remaining = value
        for position in stride(from: count + digits - 1, through: count, by: -1) {
            base[position] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        count += digits
    }
}
