import Batchman
import FoundationEssentials
import Glibc

/// Standard input or `--input FILE` as a source: read a chunk when readable and its output has
/// room; its end ends the run unless the host also serves clients.
final class StreamSource: InputSource {
    let reader: InputReader
    private let destination: OutputSink
    private let writer: ResultWriter
    private let isResumable: Bool
    private let maxOutputBytes: Int
    private var lines: [ReadLine] = []
    /// How the stream ended, once it has.
    private(set) var end: InputReader.End?
    private var isStopped = false

    init(reader: InputReader, destination: OutputSink, writer: ResultWriter, isResumable: Bool, maxOutputBytes: Int) {
        self.reader = reader
        self.destination = destination
        self.writer = writer
        self.isResumable = isResumable
        self.maxOutputBytes = maxOutputBytes
    }

    var descriptor: Int32 { reader.fileDescriptor }
    var isFinished: Bool { end != nil || isStopped }

    private var origin: LineOrigin {
        LineOrigin(destination: destination, scope: 0, connection: nil, isResumable: isResumable, isReplay: false)
    }

    func events(reading: Bool, loop: InputLoop) -> Int16 {
        guard reading, !isFinished else { return 0 }
        // The output full, the writer wakes the loop once it has room again.
        let hasRoom = writer.hasRoom(onPause: { [maxOutputBytes] pause in
            guard pause == 1 else { return }
            loop.logger.log(.info, "output is not being read: \(maxOutputBytes) bytes of results are waiting; "
                            + "reading input paused until the consumer catches up (counted as outputPauses in the statistics)")
        }, onRoom: { [weak loop] in loop?.wake() })
        return hasRoom ? Int16(POLLIN) : 0
    }

    func ready(_ revents: Int16, reading: Bool, loop: InputLoop) {
        guard reading, !isFinished else { return }
        let readAt = Date()
        let origin = origin
        // Collected in a local array, not the stored one: every access to a class's stored
        // property is checked for exclusivity at run time, once per line here. The stored
        // array is put back after, for its capacity.
        var lines = self.lines
        self.lines = []
        defer { self.lines = lines }
        let ended = reader.readChunk { event in
            switch event {
            case .line(let number, let bytes, let end):
                let parsed = bytes.withUnsafeBufferPointer { JobLine.parse($0) }
                if parsed != .blank { lines.append(ReadLine(bytes: bytes, number: number, end: end, parsed: parsed)) }
            case .tooLong(let number, let length, let end):
                // Spooled as an empty record: the line's bytes were never kept.
                lines.append(ReadLine(bytes: [], number: number, end: end, parsed: nil, tooLongBy: length))
            case .cutShort(let number):
                loop.intake.reportInvalid(line: number, "input stopped in the middle of this line; it was not read whole", origin: origin)
            case .putBack: break
            }
        }
        loop.take(&lines, from: origin, readAt: readAt)
        guard let ended else { return }
        end = ended
        guard loop.servesClients else { return }
        switch ended {
        case .endOfInput:
            loop.logger.log(.info, "input ended after line \(reader.lastLine); serving clients until SIGINT or SIGTERM")
        case .readError(let code):
            loop.logger.log(.error, "reading input failed after line \(reader.lastLine): \(Errno(rawValue: code)); serving clients until SIGINT or SIGTERM")
        case .stopped:
            break
        }
    }

    /// A line begun is wound back (a file) or reported cut short (a pipe).
    func stopReading(loop: InputLoop) {
        guard !isFinished else { return }
        isStopped = true
        let origin = origin
        reader.stop { event in
            switch event {
            case .putBack(let number, let offset):
                loop.logger.log(.info, "line \(number) was only partly read: input wound back to its start (byte \(offset)) for the next run")
            case .cutShort(let number):
                loop.intake.reportInvalid(line: number, "input stopped in the middle of this line; it was not read whole", origin: origin)
            default: break
            }
        }
    }

    /// The session owns the descriptor.
    func close(loop: InputLoop) {}
}
