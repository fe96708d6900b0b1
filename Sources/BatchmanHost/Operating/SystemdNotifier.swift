import Batchman
import Glibc
import Synchronization

/// Tells systemd (or anything that speaks its notification protocol) how the host is doing,
/// when `NOTIFY_SOCKET` names a datagram socket: `READY=1`, `RELOADING=1`, `STOPPING=1`,
/// `STATUS=...`, and `WATCHDOG=1` every half `WATCHDOG_USEC` when that is set.
///
/// The host runs in a child of the `batchman` systemd started, so the unit needs
/// `NotifyAccess=all` (the example unit has it), and `WATCHDOG_PID` names that parent.
final class SystemdNotifier: Sendable {
    private let socket: Int32
    private let address: Syscall.SocketAddress
    /// Nanoseconds between two `WATCHDOG=1`; nil without a watchdog.
    let watchdogInterval: UInt64?
    private let watchdogStop: (read: Int32, write: Int32)?

    /// The notifier `NOTIFY_SOCKET` asks for; nil when it is unset or unusable.
    static func fromEnvironment(_ environment: [String: String], logger: BatchmanLogger) -> SystemdNotifier? {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        // An abstract socket is written with a leading "@", its name with a leading NUL.
        guard var address = Syscall.SocketAddress(unixPath: path) else {
            logger.log(.warning, "NOTIFY_SOCKET \(path) is not a socket path the host can use; systemd is not told how it is doing")
            return nil
        }
        if path.hasPrefix("@") {
            withUnsafeMutableBytes(of: &address.storage) { $0[MemoryLayout<sa_family_t>.size] = 0 }
            address.length -= 1  // an abstract name is not NUL-terminated
        }
        guard case .success(let socket) = Syscall.datagramSocket() else {
            logger.log(.warning, "NOTIFY_SOCKET \(path): cannot make a socket: \(Errno.current)")
            return nil
        }
        var interval: UInt64?
        if let text = environment["WATCHDOG_USEC"], let microseconds = UInt64(text), microseconds > 0 {
            let pid = environment["WATCHDOG_PID"].flatMap { Int32($0) }
            // Ours, or our supervising parent's (the process systemd started).
            if pid == nil || pid == getpid() || pid == getppid() { interval = microseconds * 1000 / 2 }
        }
        return SystemdNotifier(socket: socket, address: address, watchdogInterval: interval)
    }

    private init(socket: Int32, address: Syscall.SocketAddress, watchdogInterval: UInt64?) {
        self.socket = socket
        self.address = address
        self.watchdogInterval = watchdogInterval
        if watchdogInterval != nil, case .success(let ends) = Syscall.pipe() {
            watchdogStop = ends
        } else {
            watchdogStop = nil
        }
    }

    deinit { Glibc.close(socket) }

    /// Sends one notification (several `NAME=value` lines); a failure is ignored, as systemd's
    /// own `sd_notify` callers do: the host's work does not depend on being watched.
    func send(_ message: String) {
        var bytes = Array(message.utf8)
        _ = address.withPointer { pointer, length in
            Syscall.valueOrErrno { sendto(socket, &bytes, bytes.count, Int32(MSG_NOSIGNAL), pointer, length) }
        }
    }

    /// Starts sending `WATCHDOG=1` every half `WATCHDOG_USEC`, until ``stop()``.
    func startWatchdog() {
        guard let watchdogInterval, let watchdogStop else { return }
        DedicatedThread.start(name: "batchman-watchdog") { [self] in
            while true {
                send("WATCHDOG=1")
                var descriptors = [pollfd(fd: watchdogStop.read, events: Int16(POLLIN), revents: 0)]
                _ = Syscall.poll(&descriptors, milliseconds: Int32(min(watchdogInterval / 1_000_000, UInt64(Int32.max))))
                if descriptors[0].revents != 0 { return }
            }
        }
    }

    func stop() {
        guard let watchdogStop else { return }
        var byte: UInt8 = 1
        _ = Glibc.write(watchdogStop.write, &byte, 1)
    }
}
