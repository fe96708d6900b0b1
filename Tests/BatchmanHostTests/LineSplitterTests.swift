@testable import BatchmanHost
import Testing

/// The splitter against a reference split, over random lines cut into random chunks.
@Suite struct LineSplitterTests {
    enum Cut: Equatable {
        case line(Int, [UInt8], UInt64)
        case tooLong(Int, Int, UInt64)
    }

    static func split(_ chunks: [[UInt8]], maxLineBytes: Int) -> [Cut] {
        var splitter = LineSplitter(maxLineBytes: maxLineBytes)
        var cuts: [Cut] = []
        let record = { (line: LineSplitter.Line) in
            switch line {
            case .line(let number, let bytes, let end): cuts.append(.line(number, Array(bytes), end))
            case .tooLong(let number, let length, let end): cuts.append(.tooLong(number, length, end))
            }
        }
        for chunk in chunks { splitter.feed(chunk, record) }
        splitter.finish(record)
        return cuts
    }

    @Test func cutsEveryLineWhereverTheChunksEnd() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let lines = (0..<Int.random(in: 0...40, using: &generator)).map { _ in
                (0..<Int.random(in: 0...30, using: &generator)).map { _ in UInt8.random(in: 32...126, using: &generator) }
            }
            let maxLineBytes = 20
            let finalNewline = Bool.random(using: &generator)
            var stream = lines.map { $0 + [10] }.joined().map { $0 }
            if !finalNewline, !stream.isEmpty { stream.removeLast() }
            var expected: [Cut] = []
            var end: UInt64 = 0
            for (index, line) in lines.enumerated() {
                let isLast = index == lines.count - 1
                if isLast, !finalNewline, line.isEmpty { break }  // nothing after the last newline
                end += UInt64(line.count) + (isLast && !finalNewline ? 0 : 1)
                expected.append(line.count > maxLineBytes ? .tooLong(index + 1, line.count, end) : .line(index + 1, line, end))
            }
            var chunks: [[UInt8]] = []
            var start = 0
            while start < stream.count {
                let size = Int.random(in: 1...50, using: &generator)
                chunks.append(Array(stream[start..<min(stream.count, start + size)]))
                start += size
            }
            #expect(Self.split(chunks, maxLineBytes: maxLineBytes) == expected, "\(chunks)")
        }
    }
}
