import Glibc

/// One end of the host-worker socket: writes whole frames, reads them one at a time, with a
/// deadline, while watching the peer process itself (a pidfd): a worker whose socket is held
/// open by a child it forked is still seen to die.
final class FrameChannel {
    let fileDescriptor: Int32
    /// Frames longer than this are refused before any of their bytes are buffered.
    private let maxIncomingLength: Int
    private var buffer: [UInt8] = []
    private var start = 0
    /// What one read(2) fills, made once: growing `buffer` by 64 KiB of zeros for every read
    /// cost more than the frame it read (an element at a time, unoptimised).
    private var readSpace = [UInt8](repeating: 0, count: 64 * 1024)

    init(fileDescriptor: Int32, maxIncomingLength: Int = Int(UInt32.max)) {
        self.fileDescriptor = fileDescriptor
        self.maxIncomingLength = maxIncomingLength
    }

    enum ReadResult: Equatable {
        case frame(WorkerFrame)
        /// The other end closed (the worker died, or the host went away).
        case closed
        /// The watched process ended, whoever still holds its end of the socket.
        case processEnded
        /// Bytes that are not a frame: a broken peer. Says what was wrong.
        case malformed(String)
        /// The deadline passed first.
        case timedOut
        /// `wakeEvery` passed without a frame: the caller checks what it watches and reads again.
        case idle
    }

    /// Writes `frame` whole; false if the other end is gone.
    func write(_ frame: WorkerFrame) -> Bool {
        (try? Syscall.writeAll(fileDescriptor, frame.encoded, isSocket: true).get()) != nil
    }

    /// The next frame, waiting at most until `deadline` (monotonic nanoseconds; nil: no limit).
    /// - Parameters:
    ///   - process: a pidfd of the peer: its end is reported as soon as no frame is waiting.
    ///   - wakeEvery: return ``ReadResult/idle`` after this many milliseconds without a frame.
    func read(until deadline: UInt64? = nil, watching process: Int32? = nil, wakeEvery: Int32? = nil) -> ReadResult {
        let wakeAt = wakeEvery.map { Syscall.monotonicNanoseconds() + UInt64($0) * 1_000_000 }
        while true {
            switch bufferedFrame() {
            case .some(let result): return result
            case .none: break
            }
            var descriptors = [pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)]
            if let process { descriptors.append(pollfd(fd: process, events: Int16(POLLIN), revents: 0)) }
            let limit = [deadline, wakeAt].compactMap { $0 }.min()
            switch Syscall.poll(&descriptors, milliseconds: Syscall.pollMilliseconds(until: limit)) {
            case .failure: return .closed
            case .success(0):
                let now = Syscall.monotonicNanoseconds()
                if let deadline, now >= deadline { return .timedOut }
                if let wakeAt, now >= wakeAt { return .idle }
                continue
            case .success:
                break
            }
            if descriptors[0].revents == 0 {
                // Only the process descriptor: the peer is gone, and nothing it wrote is waiting.
                return .processEnded
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            let received = readSpace.withUnsafeMutableBytes { Syscall.read(fileDescriptor, into: $0) }
            guard case .success(let got) = received, got > 0 else { return .closed }
            buffer.append(contentsOf: readSpace[..<got])
        }
    }

    /// The next whole frame already read, or nil if more bytes are needed.
    private func bufferedFrame() -> ReadResult? {
        let available = buffer.count - start
        guard available >= 4 else { return nil }
        let length = Int(buffer[start..<start + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard length <= maxIncomingLength else {
            return .malformed("a frame of \(length) bytes, more than the \(maxIncomingLength) a frame may have")
        }
        guard available >= 4 + length else { return nil }
        let body = buffer[(start + 4)..<(start + 4 + length)]
        start += 4 + length
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        guard let frame = WorkerFrame.decode(body) else {
            return .malformed("a frame of \(length) bytes that is not one whole frame of a known kind")
        }
        return .frame(frame)
    }
}
