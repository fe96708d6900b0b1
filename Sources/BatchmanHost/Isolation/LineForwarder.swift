import Batchman
import CBatchmanSystem
import Dispatch
import Glibc
import Synchronization

/// Copies what arrives on a pipe to the log, one warning per line: what a plugin writes to its
/// standard output must never reach the result stream.
enum LineForwarder {
    /// One per forwarder still reading, signalled when it has logged its last line.
    private static let running = Mutex<[ObjectIdentifier: DispatchSemaphore]>([:])

    /// Reads `descriptor` on a thread of its own until end of file, then closes it. Each line
    /// is logged as "<source> wrote to standard output: <line>", control characters escaped.
    static func start(reading descriptor: Int32, source: String, logger: BatchmanLogger) {
        let finished = DispatchSemaphore(value: 0)
        running.withLock { $0[ObjectIdentifier(finished)] = finished }
        DedicatedThread.start(name: "batchman-stdout") {
            defer {
                running.withLock { $0[ObjectIdentifier(finished)] = nil }
                finished.signal()
            }
            var pending: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            func flush(_ line: ArraySlice<UInt8>) {
                let text = line.withUnsafeBytes { PluginHostServices.oneLine($0) }
                logger.log(.warning, "\(source) wrote to standard output: \(text)")
            }
            while case .success(let count) = chunk.withUnsafeMutableBytes({ Syscall.read(descriptor, into: $0) }), count > 0 {
                pending += chunk.prefix(count)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    flush(pending[..<newline])
                    pending.removeSubrange(...newline)
                }
                // A line longer than this is logged in pieces rather than held without bound.
                if pending.count > 64 * 1024 {
                    flush(pending[...])
                    pending.removeAll()
                }
            }
            if !pending.isEmpty { flush(pending[...]) }
            close(descriptor)
        }
    }

    /// Waits (at most `limit`) until every forwarder has logged what it read: before the host
    /// exits, so that a plugin's last words are not lost. Call once the pipes' writers are gone
    /// (``restoreStandardOutput(from:)`` for the in-process one).
    static func waitForAll(within limit: Duration = .seconds(2)) {
        let deadline = DispatchTime.now() + .nanoseconds(Int(limit.nanosecondsClamped))
        for finished in running.withLock({ Array($0.values) }) { _ = finished.wait(timeout: deadline) }
    }

    /// Undoes ``protectStandardOutput(logger:)``: puts the real standard output (`results`)
    /// back on descriptor 1, which also closes the pipe's last write end, so its forwarder
    /// logs what is left and ends. A later run in the same process starts from the real one.
    static func restoreStandardOutput(from results: Int32) {
        dup2(results, STDOUT_FILENO)
    }

    /// Moves standard output aside for the host's results and puts a pipe in its place whose
    /// lines are logged: an in-process plugin's `printf` cannot corrupt the results.
    /// - Returns: the descriptor that now leads to the real standard output.
    static func protectStandardOutput(logger: BatchmanLogger) -> Int32? {
        guard case .success(let results) = Syscall.duplicate(STDOUT_FILENO, atLeast: 3) else { return nil }
        guard case .success(let ends) = Syscall.pipe() else {
            close(results)
            return nil
        }
        dup2(ends.write, STDOUT_FILENO)
        close(ends.write)
        start(reading: ends.read, source: "a plugin (in-process)", logger: logger)
        return results
    }
}
