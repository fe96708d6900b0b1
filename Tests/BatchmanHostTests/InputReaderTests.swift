@testable import BatchmanHost
import BatchmanTesting
import Foundation
import Testing

/// The reader against real pipes: lines split across reads and chunks come out whole.
@Suite(.timeLimit(.minutes(5)))
struct InputReaderTests {
    /// Runs a reader over a pipe fed with `writes`, then closed (or, with `stop`, stopped after
    /// the last complete line while the pipe stays open), as the input loop drives it.
    func read(_ writes: [[UInt8]], maxLineBytes: Int = 1 << 20, stop: Bool = false) async -> (events: [String], end: InputReader.End) {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let events = RecordLog<String>()
        let finished = RecordLog<InputReader.End>()
        let complete = writes.flatMap { $0 }.filter { $0 == UInt8(ascii: "\n") }.count
        let descriptor = ends[0]
        Thread.detachNewThread {
            let reader = InputReader(fileDescriptor: descriptor, maxLineBytes: maxLineBytes)
            func record(_ event: InputReader.Event) {
                switch event {
                case .line(let number, let bytes, _): events.append("\(number):\(String(decoding: bytes, as: UTF8.self))")
                case .tooLong(let number, let length, _): events.append("\(number):too long \(length)")
                case .cutShort(let number): events.append("\(number):cut short")
                case .putBack(let number, let offset): events.append("\(number):put back to \(offset)")
                }
            }
            var end: InputReader.End?
            while end == nil {
                end = reader.readChunk(record)
                // Stopped once every complete line is in, mid-line, with the pipe still open.
                if stop, end == nil, events.elements.count == complete {
                    reader.stop(record)
                    end = .stopped
                }
            }
            finished.append(end!)
        }
        let writer = ends[1]
        Thread.detachNewThread {
            for chunk in writes { chunk.withUnsafeBytes { _ = Glibc.write(writer, $0.baseAddress, $0.count) } }
            if !stop { close(writer) }
        }
        let end = await finished.wait(forCount: 1)[0]
        if stop { close(writer) }
        close(ends[0])
        return (events.elements, end)
    }

    @Test func joinsLinesSplitAcrossReadsAndChunks() async {
        // Lines of growing length, far past one 64 KiB chunk, written in awkward pieces.
        let lines = (1...400).map { String(repeating: Character(UnicodeScalar(UInt8(97 + $0 % 26))), count: $0 * 7) }
        let bytes = Array(lines.joined(separator: "\n").utf8) + [UInt8(ascii: "\n")]
        var writes: [[UInt8]] = []
        var offset = 0
        var size = 1
        while offset < bytes.count {
            let end = min(bytes.count, offset + size)
            writes.append(Array(bytes[offset..<end]))
            offset = end
            size = size * 3 % 70_001 + 1
        }

        let (events, end) = await read(writes)

        #expect(end == .endOfInput)
        #expect(events == lines.enumerated().map { "\($0.offset + 1):\($0.element)" })
    }

    @Test func skipsAnOverlongLineWithoutLosingItsNeighbours() async {
        let long = String(repeating: "x", count: 200_000)
        let (events, _) = await read([Array("first\n\(long)\nlast".utf8)], maxLineBytes: 1000)

        #expect(events == ["1:first", "2:too long 200000", "3:last"], "a last line without a newline still counts")
    }

    @Test func reportsAHalfReadLineWhenStopped() async {
        let (events, end) = await read([Array("one\ntwo\nthr".utf8)], stop: true)

        #expect(end == .stopped)
        #expect(events == ["1:one", "2:two", "3:cut short"])
    }

    @Test func keepsAShortReadInABufferOfItsOwnSize() {
        let shortRead = [UInt8](unsafeUninitializedCapacity: InputReader.chunkSize) { buffer, count in
            for index in 0..<100 { buffer[index] = UInt8(index) }
            count = 100
        }

        let compacted = InputReader.compacted(shortRead)

        #expect(compacted == shortRead)
        #expect(compacted.capacity < 1024, "a pending job must not pin a 64 KiB read buffer")
    }
}
