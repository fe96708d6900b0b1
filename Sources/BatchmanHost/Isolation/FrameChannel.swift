import Glibc

/// One end of the host-worker socket: writes whole frames, reads them one at a time, and can
/// wait for the next frame with a deadline.
final class FrameChannel {
    let fileDescriptor: Int32
    private var buffer: [UInt8] = []
    private var start = 0

    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
    }

    enum ReadResult: Equatable {
        case frame(WorkerFrame)
        /// The other end closed (the worker died, or the host went away).
        case closed
        /// Bytes that are not a frame: a broken peer.
        case malformed
        /// The deadline passed first.
        case timedOut
    }

    /// Writes `frame` whole; false if the other end is gone.
    func write(_ frame: WorkerFrame) -> Bool {
        frame.encoded.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = send(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }

    /// The next frame, waiting at most until `deadline` (a `CLOCK_MONOTONIC` time in
    /// nanoseconds; nil: no limit).
    func read(until deadline: UInt64? = nil) -> ReadResult {
        while true {
            let available = buffer.count - start
            if available >= 4 {
                let length = Int(buffer[start..<start + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
                if available >= 4 + length {
                    let body = buffer[(start + 4)..<(start + 4 + length)]
                    start += 4 + length
                    if start == buffer.count {
                        buffer.removeAll(keepingCapacity: true)
                        start = 0
                    }
                    return WorkerFrame.decode(body).map(ReadResult.frame) ?? .malformed
                }
            }
            if let deadline {
                let now = Self.monotonicNanoseconds()
                guard now < deadline else { return .timedOut }
                var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
                let milliseconds = Int32(min((deadline - now + 999_999) / 1_000_000, UInt64(Int32.max)))
                let ready = poll(&descriptor, 1, milliseconds)
                if ready == 0 { continue }
                if ready < 0, errno != EINTR { return .closed }
                if ready < 0 { continue }
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            let count = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: 64 * 1024))
            let received = buffer.withUnsafeMutableBytes { Glibc.read(fileDescriptor, $0.baseAddress! + count, 64 * 1024) }
            buffer.removeLast(64 * 1024 - max(0, received))
            if received < 0, errno == EINTR { continue }
            if received <= 0 { return .closed }
        }
    }

    static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
