#if canImport(Glibc)
import Glibc
#endif

/// Cuts a stream of bytes into lines, a chunk at a time: what standard input, a file and every
/// client connection share.
///
/// A line is a slice of the chunk it ends in when it lies in one chunk (no copy: a job's payload
/// keeps its chunk alive), or the pieces it was read in joined. A line longer than
/// `maxLineBytes` is not kept: only its length is counted while its bytes are skipped.
struct LineSplitter {
    enum Line {
        /// A line (without its newline), its 1-based number, and the stream's offset just after it.
        case line(number: Int, bytes: ArraySlice<UInt8>, end: UInt64)
        /// A line longer than the limit; its bytes were skipped.
        case tooLong(number: Int, length: Int, end: UInt64)
    }

    let maxLineBytes: Int
    /// The number of the last line handed over.
    private(set) var lineNumber = 0
    /// Bytes of the stream before the next chunk (where the stream started, for a file resumed
    /// part-way, plus every chunk fed).
    private(set) var offset: UInt64
    /// The start of a line that continues in the next chunk.
    private var partial: [UInt8] = []
    private var skippingLongLine = false
    private var skippedLength = 0

    init(maxLineBytes: Int, startingAt offset: UInt64 = 0) {
        self.maxLineBytes = maxLineBytes
        self.offset = offset
    }

    /// The bytes of a line begun and not yet ended; 0 if the last chunk ended with a newline.
    var unfinishedBytes: Int { skippingLongLine ? skippedLength : partial.count }

    /// Hands over every line that `chunk` ends.
    mutating func feed(_ chunk: [UInt8], _ handle: (Line) -> Void) {
        var lineStart = 0
        while let newline = Self.newline(in: chunk, from: lineStart) {
            let end = offset + UInt64(newline + 1)
            if !partial.isEmpty || skippingLongLine {
                if skippingLongLine {
                    skippedLength += newline - lineStart
                } else {
                    partial.append(contentsOf: chunk[lineStart..<newline])
                }
                finishLine(partial[...], end: end, handle)
                partial = []
            } else {
                finishLine(chunk[lineStart..<newline], end: end, handle)
            }
            lineStart = newline + 1
        }
        offset += UInt64(chunk.count)
        let rest = chunk[lineStart...]
        if skippingLongLine {
            skippedLength += rest.count
        } else if partial.count + rest.count > maxLineBytes {
            skippingLongLine = true
            skippedLength = partial.count + rest.count
            partial = []
        } else {
            partial.append(contentsOf: rest)
        }
    }

    /// The index of the first newline of `chunk` at or after `start`. `memchr` rather than
    /// `firstIndex(of:)`, which compared byte by byte: the line splitter was 7% of the host
    /// reader's time in H1, by perf.
    private static func newline(in chunk: [UInt8], from start: Int) -> Int? {
        chunk.withUnsafeBufferPointer { bytes in
            guard let base = bytes.baseAddress, start < bytes.count,
                  let found = memchr(base + start, Int32(UInt8(ascii: "\n")), bytes.count - start) else { return nil }
            return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// The stream ended: a last line without a newline is still a line.
    mutating func finish(_ handle: (Line) -> Void) {
        guard unfinishedBytes > 0 || skippingLongLine else { return }
        finishLine(partial[...], end: offset, handle)
        partial = []
    }

    /// Forgets a line begun and not ended (the stream is given up on); returns its number.
    mutating func dropUnfinished() -> Int {
        partial = []
        skippingLongLine = false
        skippedLength = 0
        return lineNumber + 1
    }

    private mutating func finishLine(_ bytes: ArraySlice<UInt8>, end: UInt64, _ handle: (Line) -> Void) {
        lineNumber += 1
        if skippingLongLine {
            handle(.tooLong(number: lineNumber, length: skippedLength + bytes.count, end: end))
            skippingLongLine = false
            skippedLength = 0
        } else if bytes.count > maxLineBytes {
            handle(.tooLong(number: lineNumber, length: bytes.count, end: end))
        } else {
            handle(.line(number: lineNumber, bytes: bytes, end: end))
        }
    }
}
