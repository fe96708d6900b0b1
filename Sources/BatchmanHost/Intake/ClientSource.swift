import Batchman
import FoundationEssentials
import Glibc

/// A client's connection as a source: its lines are read while its results have room, and
/// what a full socket left is written when it is writable. The ``Connection`` is the
/// destination its jobs' results go to, from whichever thread settles them.
final class ClientSource: InputSource {
    let connection: Connection
    private var splitter: LineSplitter
    private var lines: [ReadLine] = []

    init(descriptor: Int32, listener: ServiceAddress, loop: InputLoop) {
        let scope = loop.nextScope()
        connection = Connection(descriptor: descriptor, scope: scope, name: "client \(scope) on \(listener)",
                                maxOutputBytes: loop.configuration.maxOutputBytes, spool: loop.spool, pending: loop.pending,
                                counters: loop.counters, wakeLoop: { [weak loop] in loop?.wake() })
        splitter = LineSplitter(maxLineBytes: loop.maxLineBytes)
        loop.counters.connected()
    }

    var descriptor: Int32 { connection.descriptor }
    var isFinished: Bool { connection.isClosed }

    func events(reading: Bool, loop: InputLoop) -> Int16 {
        Int16((reading && connection.wantsInput ? POLLIN : 0) | (connection.wantsWritable ? POLLOUT : 0))
    }

    func ready(_ revents: Int16, reading: Bool, loop: InputLoop) {
        if revents & Int16(POLLOUT) != 0 { connection.writable() }
        if revents & Int16(POLLIN) != 0, reading, connection.wantsInput {
            read(loop: loop)
        } else if revents & Int16(POLLHUP | POLLERR) != 0 {
            _ = connection.clientLeft()  // hung up without being read to its end
        }
    }

    /// Reads one chunk and takes its lines; the client's end of stream ends its input.
    private func read(loop: InputLoop) {
        let readAt = Date()
        var outcome = Result<Int, Errno>.success(0)
        let chunk = [UInt8](unsafeUninitializedCapacity: InputReader.chunkSize) { buffer, count in
            outcome = Syscall.read(connection.descriptor, into: UnsafeMutableRawBufferPointer(buffer))
            count = (try? outcome.get()) ?? 0
        }
        let origin = LineOrigin(destination: connection, scope: connection.scope, connection: connection, isResumable: false, isReplay: false)
        func collect(_ line: LineSplitter.Line) {
            switch line {
            case .line(let number, let bytes, _):
                let parsed = bytes.withUnsafeBufferPointer { JobLine.parse($0) }
                if parsed != .blank { lines.append(ReadLine(bytes: bytes, number: number, end: 0, parsed: parsed)) }
            case .tooLong(let number, let length, _):
                lines.append(ReadLine(bytes: [], number: number, end: 0, parsed: nil, tooLongBy: length))
            }
        }
        switch outcome {
        case .success(0):
            splitter.finish(collect)
            loop.take(&lines, from: origin, readAt: readAt)
            _ = connection.inputEnded()
        case .success:
            splitter.feed(InputReader.compacted(chunk), collect)
            loop.take(&lines, from: origin, readAt: readAt)
        case .failure(.wouldBlock), .failure(.interrupted):
            return
        case .failure:
            _ = connection.clientLeft()
        }
    }

    /// No more lines; the connection closes once its results are written.
    func stopReading(loop: InputLoop) {
        _ = connection.inputEnded()
    }

    /// Closes the descriptor (only the loop does, once no thread writes to it), and says if the
    /// client left before its results.
    func close(loop: InputLoop) {
        Glibc.close(connection.descriptor)
        loop.counters.disconnected()
        let dropped = connection.dropped
        if dropped > 0 { loop.counters.orphaned(dropped) }
        if connection.clientIsGone {
            loop.logger.log(.warning, "\(connection.name) went away before all its results were written; its accepted jobs still run, "
                            + "and results nobody can receive are counted as orphaned")
        }
    }

    /// The grace after the drain is over: whatever is not written is dropped.
    func abandon() {
        _ = connection.clientLeft()
    }
}
