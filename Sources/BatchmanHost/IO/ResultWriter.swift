import Dispatch
import Glibc
import Synchronization

/// Buffers result lines and writes them from a thread of its own, with a bound.
///
/// Lines arrive encoded (a batch's results at a time, encoded on the thread that settled the
/// batch, outside any lock); the writer thread swaps the shared buffer out and writes it whole
/// whenever there is anything in it. So output is never held back waiting for a
/// buffer to fill: a result is written as soon as the writer is free, and under load many
/// results share one write(2).
///
/// The bytes waiting to be written are bounded: the input loop asks ``hasRoom(onPause:onRoom:)``
/// before it reads the stream, and does not read it while `maxBufferedBytes` are waiting, so a
/// consumer that stops reading stops the host reading instead of growing its memory. Once a write fails (the consumer is
/// gone), nothing more is buffered, waiting readers are released, and `onFailure` runs once.
final class ResultWriter: Sendable {
    private struct State {
        var pending: [UInt8] = []
        /// Spool sequences of the lines in `pending`: done once those bytes are written.
        var pendingDone: [UInt64] = []
        /// How many result lines `pending` holds.
        var pendingLines = 0
        var isWriterWaiting = false
        var isFinishing = false
        var drained: [CheckedContinuation<Void, Never>] = []
        var writeError: Int32?
        /// Called once the buffer has drained to half the bound (the input loop waits for it).
        var roomWaiter: (@Sendable () -> Void)?
        /// How many times the reader had to wait.
        var pauses = 0
    }

    private let fileDescriptor: Int32
    private let maxBufferedBytes: Int
    private let onFailure: @Sendable (Int32) -> Void
    /// Told the spool sequences of lines once their bytes are written.
    private let onWritten: @Sendable ([UInt64]) -> Void
    private let state = Mutex(State())
    /// Bytes appended and not yet written (the buffer and the chunk being written); read
    /// without the lock on every line.
    private let bufferedBytes = Atomic<Int>(0)
    private let wakeWriter = DispatchSemaphore(value: 0)
    /// Result lines written so far (`--progress`).
    private let linesWritten = Atomic<Int>(0)

    init(
        fileDescriptor: Int32, maxBufferedBytes: Int, onWritten: @escaping @Sendable ([UInt64]) -> Void = { _ in },
        onFailure: @escaping @Sendable (Int32) -> Void
    ) {
        self.fileDescriptor = fileDescriptor
        self.maxBufferedBytes = maxBufferedBytes
        self.onWritten = onWritten
        self.onFailure = onFailure
        DedicatedThread.start(name: "batchman-output") { [self] in runWriter() }
    }

    /// The errno of the failed write, once output has failed.
    var failure: Int32? { state.withLock { $0.writeError } }

    /// Result lines written so far.
    var written: Int { linesWritten.load(ordering: .relaxed) }

    /// How many times reading paused because output was not being consumed.
    var pauses: Int { state.withLock { $0.pauses } }

    /// Appends lines encoded by the caller, outside the lock (dropped once output has failed:
    /// nobody can read them). The lock is held for a copy, however many lines there are.
    /// - Parameters:
    ///   - count: how many result lines `lines` holds (a supervising parent counts them answered).
    ///   - done: the spool sequences of these lines, reported to `onWritten` once they are written.
    func append(_ lines: [UInt8], count: Int, done: [UInt64] = []) {
        guard !lines.isEmpty else { return }
        let mustWake = state.withLock { state -> Bool in
            guard state.writeError == nil else { return false }
            state.pendingDone += done
            state.pendingLines += count
            if state.pending.isEmpty {
                state.pending = lines  // the writer swaps the buffer out: take this one whole
            } else {
                state.pending.append(contentsOf: lines)
            }
            bufferedBytes.add(lines.count, ordering: .relaxed)
            guard state.isWriterWaiting else { return false }
            state.isWriterWaiting = false
            return true
        }
        if mustWake { wakeWriter.signal() }
    }

    /// True while fewer than `maxBufferedBytes` wait to be written (or output has failed:
    /// nothing waits any more). Otherwise false, and `onRoom` is called once half of them are
    /// written or output fails.
    /// - Parameter onPause: called when this starts a pause, with its number (1 for the first).
    func hasRoom(onPause: (Int) -> Void, onRoom: @escaping @Sendable () -> Void) -> Bool {
        guard bufferedBytes.load(ordering: .relaxed) >= maxBufferedBytes else { return true }
        let pause = state.withLock { state -> Int?? in
            guard state.writeError == nil, bufferedBytes.load(ordering: .relaxed) >= maxBufferedBytes else { return .none }
            let isNew = state.roomWaiter == nil
            state.roomWaiter = onRoom
            if isNew { state.pauses += 1 }
            return .some(isNew ? state.pauses : nil)
        }
        guard let pause else { return true }
        if let pause { onPause(pause) }
        return false
    }

    /// Writes everything appended so far, stops the writer thread, and returns the errno of a
    /// failed write, if any.
    func finish() async -> Int32? {
        await withCheckedContinuation { continuation in
            let mustWake = state.withLock { state -> Bool in
                state.isFinishing = true
                state.drained.append(continuation)
                defer { state.isWriterWaiting = false }
                return state.isWriterWaiting
            }
            if mustWake { wakeWriter.signal() }
        }
        return failure
    }

    private func runWriter() {
        var chunk: [UInt8] = []
        var chunkDone: [UInt64] = []
        var chunkLines = 0
        while true {
            let (finished, waiters) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
                swap(&chunk, &state.pending)
                swap(&chunkDone, &state.pendingDone)
                chunkLines = state.pendingLines
                state.pendingLines = 0
                guard chunk.isEmpty else { return (false, []) }
                if state.isFinishing {
                    defer { state.drained = [] }
                    return (true, state.drained)
                }
                state.isWriterWaiting = true
                return (false, [])
            }
            if finished {
                for waiter in waiters { waiter.resume() }
                return
            }
            if chunk.isEmpty {
                wakeWriter.wait()
                continue
            }
            SupervisorBoard.shared?.outputBegun(chunkLines)
            let failure = writeAll(chunk)
            bufferedBytes.subtract(chunk.count, ordering: .relaxed)
            chunk.removeAll(keepingCapacity: true)
            if failure == nil {
                linesWritten.add(chunkLines, ordering: .relaxed)
                SupervisorBoard.shared?.outputWritten(chunkLines)
                if !chunkDone.isEmpty { onWritten(chunkDone) }
            } else {
                SupervisorBoard.shared?.outputFailed(chunkLines)
            }
            chunkDone.removeAll(keepingCapacity: true)
            let roomWaiter = state.withLock { state -> (@Sendable () -> Void)? in
                if let failure, state.writeError == nil {
                    state.writeError = failure
                    bufferedBytes.subtract(state.pending.count, ordering: .relaxed)
                    state.pending = []
                }
                guard state.writeError != nil || bufferedBytes.load(ordering: .relaxed) < maxBufferedBytes / 2 else { return nil }
                defer { state.roomWaiter = nil }
                return state.roomWaiter
            }
            roomWaiter?()
            if let failure { onFailure(failure) }
        }
    }

    /// Writes `bytes` whole; returns the errno of a failed write.
    private func writeAll(_ bytes: [UInt8]) -> Int32? {
        guard failure == nil else { return nil }  // output is gone: drop, but keep draining
        guard case .failure(let error) = Syscall.writeAll(fileDescriptor, bytes) else { return nil }
        return error.rawValue
    }
}
