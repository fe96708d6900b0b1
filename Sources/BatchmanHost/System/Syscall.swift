import Batchman
import CBatchmanSystem
import Glibc

/// A system call's `errno`, as an error with its sentence: `No space left on device`.
struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    let rawValue: Int32

    /// The calling thread's `errno`, read at once: anything called after the failing call may
    /// change it.
    static var current: Errno { Errno(rawValue: errno) }

    static let interrupted = Errno(rawValue: EINTR)
    static let noSpace = Errno(rawValue: ENOSPC)
    static let quotaExceeded = Errno(rawValue: EDQUOT)
    static let wouldBlock = Errno(rawValue: EAGAIN)

    var description: String { String(cString: strerror(rawValue)) }

    /// The disk (or the user's quota) is full: waiting for room may help, retrying now will not.
    var isOutOfSpace: Bool { self == .noSpace || self == .quotaExceeded }
}

/// Every libc call the host makes that can be interrupted or fail with `errno`, wrapped once:
/// EINTR retried, the error read at once and returned as an ``Errno``, descriptors opened
/// close-on-exec. The rest of the host calls these, not libc, for I/O on descriptors.
enum Syscall {
    /// Runs `call`, a libc call that returns -1 and sets `errno` on failure, again while it is
    /// interrupted by a signal (unless `retryOnInterrupt` is false).
    @inline(__always)
    static func valueOrErrno<Value: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ call: () -> Value) -> Result<Value, Errno> {
        while true {
            let value = call()
            guard value == -1 else { return .success(value) }
            let error = Errno.current
            if retryOnInterrupt, error == .interrupted { continue }
            return .failure(error)
        }
    }

    // MARK: - Descriptors

    /// `open(2)`, always close-on-exec: a descriptor the host opens never leaks into a plugin's
    /// worker process or a check's.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) -> Result<Int32, Errno> {
        valueOrErrno { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// A pipe whose ends are both close-on-exec.
    static func pipe() -> Result<(read: Int32, write: Int32), Errno> {
        var ends: [Int32] = [0, 0]
        return valueOrErrno { bm_pipe_cloexec(&ends) }.map { _ in (ends[0], ends[1]) }
    }

    /// A connected pair of stream sockets, both close-on-exec.
    static func socketPair() -> Result<(Int32, Int32), Errno> {
        var ends: [Int32] = [0, 0]
        return valueOrErrno { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) }
            .map { _ in (ends[0], ends[1]) }
    }

    /// A copy of `descriptor` numbered `lowest` or above, close-on-exec.
    static func duplicate(_ descriptor: Int32, atLeast lowest: Int32) -> Result<Int32, Errno> {
        valueOrErrno { fcntl(descriptor, F_DUPFD_CLOEXEC, lowest) }
    }

    /// `read(2)` into `buffer`: the count read, 0 at end of input.
    static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno> {
        valueOrErrno { Glibc.read(descriptor, buffer.baseAddress, buffer.count) }
    }

    /// `pread(2)` at `offset`.
    static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Result<Int, Errno> {
        valueOrErrno { pread(descriptor, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// Writes all of `bytes`, however many calls it takes. A socket is written with
    /// `MSG_NOSIGNAL`, so a peer that is gone is an error, never a SIGPIPE.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, isSocket: Bool = false) -> Result<Void, Errno> {
        var offset = 0
        while offset < bytes.count {
            let start = bytes.baseAddress! + offset, count = bytes.count - offset
            switch valueOrErrno(isSocket ? { Glibc.send(descriptor, start, count, Int32(MSG_NOSIGNAL)) } : { Glibc.write(descriptor, start, count) }) {
            case .success(let written): offset += written
            case .failure(let error): return .failure(error)
            }
        }
        return .success(())
    }

    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], isSocket: Bool = false) -> Result<Void, Errno> {
        bytes.withUnsafeBytes { writeAll(descriptor, $0, isSocket: isSocket) }
    }

    /// `pwrite(2)` of all of `bytes` at `offset`.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> Result<Void, Errno> {
        var done = 0
        while done < bytes.count {
            switch valueOrErrno({ pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done)) }) {
            case .success(let written): done += written
            case .failure(let error): return .failure(error)
            }
        }
        return .success(())
    }

    /// `poll(2)` for at most `milliseconds` (-1: no limit); an interrupted wait returns 0 ready
    /// descriptors, so that a caller with a deadline recomputes what is left of it.
    static func poll(_ descriptors: inout [pollfd], milliseconds: Int32) -> Result<Int, Errno> {
        let count = nfds_t(descriptors.count)
        return valueOrErrno(retryOnInterrupt: false) { Glibc.poll(&descriptors, count, milliseconds) }
            .map(Int.init)
            .flatMapError { $0 == .interrupted ? .success(0) : .failure($0) }
    }

    /// Milliseconds from now until `deadline` (monotonic nanoseconds), rounded up, for poll;
    /// -1 for no deadline.
    static func pollMilliseconds(until deadline: UInt64?) -> Int32 {
        guard let deadline else { return -1 }
        let now = monotonicNanoseconds()
        guard deadline > now else { return 0 }
        return Int32(min((deadline - now + 999_999) / 1_000_000, UInt64(Int32.max)))
    }

    /// `CLOCK_MONOTONIC` nanoseconds `duration` from now (a negative one is now): a deadline for
    /// poll, waitpid, or a plugin call's `deadline_ns`.
    static func monotonicDeadline(after duration: Duration) -> UInt64 {
        monotonicNanoseconds() &+ UInt64(max(0, duration.nanosecondsClamped))
    }

    /// `CLOCK_MONOTONIC` now, in nanoseconds: what deadlines for poll and waitpid count in.
    static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    // MARK: - Processes

    /// Waits for child `pid` to end (with `WNOHANG`: nil while it runs) and says how it did.
    static func wait(for pid: pid_t, blocking: Bool = true) -> Result<ProcessEnd?, Errno> {
        var status: Int32 = 0
        return valueOrErrno { waitpid(pid, &status, blocking ? 0 : WNOHANG) }
            .map { $0 == 0 ? nil : ProcessEnd(waitStatus: status) }
    }

    /// A descriptor that becomes readable once process `pid` has ended (a pidfd).
    static func processDescriptor(_ pid: pid_t) -> Result<Int32, Errno> {
        valueOrErrno { bm_pidfd_open(pid) }
    }
}

/// How a child process ended, decoded from its `waitpid` status.
enum ProcessEnd: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus status: Int32) {
        let signal = status & 0x7f
        self = signal != 0 ? .signaled(signal) : .exited((status >> 8) & 0xff)
    }

    /// "exit status 0", "SIGSEGV".
    var description: String {
        switch self {
        case .exited(let status): "exit status \(status)"
        case .signaled(let signal): SignalName.of(signal)
        }
    }
}
