import Glibc
import Synchronization

/// How far reading `--input FILE` has come: bytes and lines, updated by the reader per chunk.
final class InputProgress: Sendable {
    let bytesRead = Atomic<UInt64>(0)
    let linesRead = Atomic<Int>(0)
}

/// `--progress`: one line on standard error, redrawn at most 4 times a second, with the bytes
/// read of the file's size, lines per second, results written and an estimate of the time left.
/// A log line clears it first (``clearLine()``), and the next redraw puts it back.
final class ProgressReporter: Sendable {
    static let redrawIntervalNanoseconds: UInt64 = 250_000_000

    let input = InputProgress()
    private let isDrawn = Atomic<Bool>(false)
    private let isStopped = Atomic<Bool>(false)
    private let isStarted = Atomic<Bool>(false)
    private let stopped = OneTimeEvent()

    /// Starts redrawing, for a file of `fileSize` bytes; `resultsWritten` reads the output's count.
    func start(fileSize: UInt64, resultsWritten: @escaping @Sendable () -> Int) {
        isStarted.store(true, ordering: .relaxed)
        DedicatedThread.start(name: "batchman-progress") { [self] in
            let start = Syscall.monotonicNanoseconds()
            while !isStopped.load(ordering: .relaxed) {
                let elapsed = Double(Syscall.monotonicNanoseconds() - start) / 1e9
                let line = Self.line(read: input.bytesRead.load(ordering: .relaxed), of: fileSize, lines: input.linesRead.load(ordering: .relaxed),
                                     results: resultsWritten(), elapsed: elapsed)
                write("\r\u{1B}[K" + line)
                isDrawn.store(true, ordering: .relaxed)
                usleep(UInt32(Self.redrawIntervalNanoseconds / 1000))
            }
            if isDrawn.exchange(false, ordering: .relaxed) { write("\r\u{1B}[K") }
            stopped.happen()
        }
    }

    /// What a log line writes first: the progress line's erasure, if it is on screen.
    func clearLine() -> String {
        isDrawn.exchange(false, ordering: .relaxed) ? "\r\u{1B}[K" : ""
    }

    /// Stops redrawing and erases the line (nothing to wait for if it never started).
    func stop() async {
        isStopped.store(true, ordering: .relaxed)
        guard isStarted.load(ordering: .relaxed) else { return }
        await stopped.wait()
    }

    /// "42% of 96.1 MB, 812,345 lines/s, 401,233 results, 0:02 left".
    static func line(read: UInt64, of size: UInt64, lines: Int, results: Int, elapsed: Double) -> String {
        let fraction = size == 0 ? 1 : min(1, Double(read) / Double(size))
        let rate = elapsed > 0 ? Double(lines) / elapsed : 0
        let bytesRate = elapsed > 0 ? Double(read) / elapsed : 0
        let left = bytesRate > 0 && read < size ? Double(size - read) / bytesRate : nil
        return "batchman: \(Int(fraction * 100))% of \(megabytes(size)), \(grouped(Int(rate))) lines/s, \(grouped(results)) results, "
            + (left.map { "\(clock($0)) left" } ?? (read >= size ? "reading done" : "estimating"))
    }

    private static func megabytes(_ bytes: UInt64) -> String {
        let tenths = Int((Double(bytes) / 1e5).rounded())
        return "\(tenths / 10).\(tenths % 10) MB"
    }

    /// 1234567 as "1,234,567".
    static func grouped(_ number: Int) -> String {
        var digits = String(number)
        var index = digits.endIndex
        while digits.distance(from: digits.startIndex, to: index) > 3 {
            index = digits.index(index, offsetBy: -3)
            digits.insert(",", at: index)
        }
        return digits
    }

    /// 125 seconds as "2:05", an hour and more as "1:02:05".
    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.up))
        let (hours, minutes, rest) = (total / 3600, total / 60 % 60, total % 60)
        let padded = rest < 10 ? "0\(rest)" : "\(rest)"
        if hours > 0 { return "\(hours):\(minutes < 10 ? "0" : "")\(minutes):\(padded)" }
        return "\(minutes):\(padded)"
    }

    private func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in _ = Glibc.write(2, bytes.baseAddress, bytes.count) }
    }
}
