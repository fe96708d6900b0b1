import Glibc
import Synchronization

/// Reads NDJSON input from a file descriptor on the calling thread and hands over each line.
///
/// Lines are slices of the chunks they were read in, so a job's payload costs no copy: a chunk
/// lives as long as a job still refers to it. ``stop()`` (from any thread) wakes the reader
/// through a pipe; it then hands over every complete line it has already read and returns.
final class InputReader: Sendable {
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

    private let fileDescriptor: Int32
    private let maxLineBytes: Int
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let isStopped = Atomic<Bool>(false)

    init(fileDescriptor: Int32, maxLineBytes: Int) {
        self.fileDescriptor = fileDescriptor
        self.maxLineBytes = maxLineBytes
        // Close-on-exec, like every descriptor the host opens: a worker started later must not hold it.
        guard case .success(let ends) = Syscall.pipe() else { preconditionFailure("cannot create the input reader's wake-up pipe: \(Errno.current)") }
        wakeRead = ends.read
        wakeWrite = ends.write
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// Makes a reader waiting for input call its `onWake` (a reload to take over). Safe from
    /// any thread.
    func wake() {
        var byte: UInt8 = 2
        _ = write(wakeWrite, &byte, 1)
    }

    /// Makes ``run(_:)`` return after the lines already read. Safe from any thread.
    func stop() {
        guard !isStopped.exchange(true, ordering: .relaxed) else { return }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// Reads until end of input, an error, or ``stop()``; calls `handle` for every line,
    /// `onChunkEnd` once the lines of each read are handled (before the reader may wait for
    /// more: what a caller batches per chunk goes out then), and `onWake` when ``wake()``
    /// interrupts a wait for input.
    func run(onWake: () -> Void = {}, onChunkEnd: () -> Void = {}, _ handle: (Event) -> Void) -> End {
        var lineNumber = 0
        var partial: [UInt8] = []   // the start of a line that continues in the next chunk
        var skippingLongLine = false
        var skippedLength = 0
        // Offsets: where reading started (a file may be resumed part-way), and how much of the
        // input was read before the current chunk.
        let start = lseek(fileDescriptor, 0, SEEK_CUR)
        var readBefore = UInt64(max(0, start))

        func finishLine(_ bytes: ArraySlice<UInt8>, end: UInt64) {
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

        while true {
            guard waitForInput(onWake: onWake) else {
                if !partial.isEmpty || skippingLongLine {
                    handle(putBack(skippingLongLine ? skippedLength : partial.count, line: lineNumber + 1))
                }
                return .stopped
            }
            var outcome = Result<Int, Errno>.success(0)
            var chunk = [UInt8](unsafeUninitializedCapacity: Self.chunkSize) { buffer, count in
                outcome = Syscall.read(fileDescriptor, into: UnsafeMutableRawBufferPointer(buffer))
                count = (try? outcome.get()) ?? 0
            }
            let bytesRead: Int
            switch outcome {
            case .success(let count):
                bytesRead = count
            case .failure(.wouldBlock):
                continue
            case .failure(let failure):
                if !partial.isEmpty || skippingLongLine { handle(.cutShort(number: lineNumber + 1)) }
                return .readError(failure.rawValue)
            }
            if bytesRead == 0 {
                // End of input: a last line without a newline is still a line.
                if !partial.isEmpty || skippingLongLine { finishLine(partial[...], end: readBefore) }
                return .endOfInput
            }
            chunk = Self.compacted(chunk)
            var lineStart = 0
            while let newline = chunk[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
                if !partial.isEmpty || skippingLongLine {
                    if skippingLongLine {
                        skippedLength += newline - lineStart
                    } else {
                        partial.append(contentsOf: chunk[lineStart..<newline])
                    }
                    finishLine(partial[...], end: readBefore + UInt64(newline + 1))
                    partial = []
                } else {
                    finishLine(chunk[lineStart..<newline], end: readBefore + UInt64(newline + 1))
                }
                lineStart = newline + 1
            }
            onChunkEnd()
            readBefore += UInt64(chunk.count)
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
    }

    /// Winds a seekable input back by `count` bytes, the part of line `line` read so far, so
    /// that the line stays for the next run (the file offset is shared with whoever opened the
    /// file); a pipe cannot be wound back, so the line is reported cut short.
    private func putBack(_ count: Int, line: Int) -> Event {
        let offset = lseek(fileDescriptor, -off_t(count), SEEK_CUR)
        return offset >= 0 ? .putBack(number: line, offset: Int64(offset)) : .cutShort(number: line)
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

    /// Waits until input is readable (or at its end) and returns true, or returns false once
    /// ``stop()`` was called.
    private func waitForInput(onWake: () -> Void) -> Bool {
        while !isStopped.load(ordering: .relaxed) {
            var descriptors = [pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            guard case .success(let ready) = Syscall.poll(&descriptors, milliseconds: -1) else { return true }
            if ready == 0 { continue }
            if descriptors[1].revents != 0 {
                var bytes = [UInt8](repeating: 0, count: 64)
                _ = read(wakeRead, &bytes, bytes.count)
                if isStopped.load(ordering: .relaxed) { return false }
                onWake()
                continue
            }
            if descriptors[0].revents != 0 { return true }
        }
        return false
    }
}
