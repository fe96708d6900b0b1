import Glibc
import Synchronization

/// Reads NDJSON input from standard input or a file, a chunk per call, and hands over each line.
///
/// Lines are slices of the chunks they were read in, so a job's payload costs no copy: a chunk
/// lives as long as a job still refers to it. The reader does not wait: ``InputLoop`` polls its
/// descriptor with the others and calls ``readChunk(_:)`` when it is readable.
final class InputReader {
    enum Event {
        /// A line (without its newline), its 1-based number, and the input's offset just after
        /// it (for a file: where a reader resumes after it; counted from 0 for a pipe).
        case line(number: Int, bytes: ArraySlice<UInt8>, end: UInt64)
        /// A line longer than the limit; its bytes were skipped.
        case tooLong(number: Int, length: Int, end: UInt64)
        /// Input was stopped in the middle of this line: it was partly read and cannot be used.
        case cutShort(number: Int)
        /// Input was stopped in the middle of this line, and the input (a file) was wound back
        /// to the line's start, at `offset`: the next reader of the file reads it whole.
        case putBack(number: Int, offset: Int64)
    }

    enum End: Equatable {
        case endOfInput
        case stopped
        case readError(Int32)
    }

    static let chunkSize = 64 * 1024

    let fileDescriptor: Int32
    private var splitter: LineSplitter
    /// Told how far reading has come, per chunk (`--progress`).
    var progress: InputProgress?

    init(fileDescriptor: Int32, maxLineBytes: Int) {
        self.fileDescriptor = fileDescriptor
        // Offsets count from where reading starts: a file may be resumed part-way.
        splitter = LineSplitter(maxLineBytes: maxLineBytes, startingAt: UInt64(max(0, lseek(fileDescriptor, 0, SEEK_CUR))))
    }

    /// The number of the last line handed over.
    var lastLine: Int { splitter.lineNumber }

    /// Reads one chunk and hands over every line it ends; returns how input ended, or nil
    /// while there is more.
    func readChunk(_ handle: (Event) -> Void) -> End? {
        var outcome = Result<Int, Errno>.success(0)
        var chunk = [UInt8](unsafeUninitializedCapacity: Self.chunkSize) { buffer, count in
            outcome = Syscall.read(fileDescriptor, into: UnsafeMutableRawBufferPointer(buffer))
            count = (try? outcome.get()) ?? 0
        }
        switch outcome {
        case .success(0):
            splitter.finish { handle(Self.event($0)) }
            return .endOfInput
        case .success:
            chunk = Self.compacted(chunk)
            splitter.feed(chunk) { handle(Self.event($0)) }
            if let progress {
                progress.bytesRead.store(splitter.offset, ordering: .relaxed)
                progress.linesRead.store(splitter.lineNumber, ordering: .relaxed)
            }
            return nil
        case .failure(.wouldBlock):
            return nil
        case .failure(let failure):
            if splitter.unfinishedBytes > 0 { handle(.cutShort(number: splitter.dropUnfinished())) }
            return .readError(failure.rawValue)
        }
    }

    /// Reading stops before the end: a line begun is wound back for the next run (a file), or
    /// reported cut short (a pipe, which cannot be wound back).
    func stop(_ handle: (Event) -> Void) {
        let begun = splitter.unfinishedBytes
        guard begun > 0 else { return }
        let line = splitter.dropUnfinished()
        // The file offset is shared with whoever opened the file: the next run starts there.
        let offset = lseek(fileDescriptor, -off_t(begun), SEEK_CUR)
        handle(offset >= 0 ? .putBack(number: line, offset: Int64(offset)) : .cutShort(number: line))
    }

    private static func event(_ line: LineSplitter.Line) -> Event {
        switch line {
        case .line(let number, let bytes, let end): .line(number: number, bytes: bytes, end: end)
        case .tooLong(let number, let length, let end): .tooLong(number: number, length: length, end: end)
        }
    }

    /// `chunk`, copied into a buffer of its own size when a read came back short (interactive
    /// or trickling input), so pending jobs do not each pin a 64 KiB buffer. `Array(chunk)`
    /// would not do: it shares the original storage, capacity and all.
    static func compacted(_ chunk: [UInt8]) -> [UInt8] {
        guard chunk.count < chunkSize / 4 else { return chunk }
        return [UInt8](unsafeUninitializedCapacity: chunk.count) { buffer, count in
            count = buffer.initialize(fromContentsOf: chunk)
        }
    }
}
