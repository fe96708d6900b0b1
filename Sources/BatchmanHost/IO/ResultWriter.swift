import Dispatch
import Glibc
import Synchronization

/// Buffers result lines and writes them from a thread of its own.
///
/// Lines are encoded straight into a shared buffer; the writer thread swaps it out and writes
/// it whole whenever there is anything in it. So output is never held back waiting for a
/// buffer to fill: a result is written as soon as the writer is free, and under load many
/// results share one write(2).
final class ResultWriter: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var isWriterWaiting = false
        var isFinishing = false
        var drained: [CheckedContinuation<Void, Never>] = []
        var writeError: Int32?
    }

    private let fileDescriptor: Int32
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)

    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
        DedicatedThread.start(name: "batchman-output") { [self] in runWriter() }
    }

    /// Appends one or more lines by running `encode` on the shared buffer.
    func append(_ encode: (inout [UInt8]) -> Void) {
        let mustWake = state.withLock { state -> Bool in
            encode(&state.pending)
            guard state.isWriterWaiting else { return false }
            state.isWriterWaiting = false
            return true
        }
        if mustWake { wake.signal() }
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
            if mustWake { wake.signal() }
        }
        return state.withLock { $0.writeError }
    }

    private func runWriter() {
        var chunk: [UInt8] = []
        while true {
            let (finished, waiters) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
                swap(&chunk, &state.pending)
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
                wake.wait()
                continue
            }
            writeAll(chunk)
            chunk.removeAll(keepingCapacity: true)
        }
    }

    private func writeAll(_ bytes: [UInt8]) {
        guard state.withLock({ $0.writeError == nil }) else { return }  // output is gone: drop, but keep draining
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    let failure = errno
                    state.withLock { $0.writeError = failure }
                    return
                }
                offset += written
            }
        }
    }
}
