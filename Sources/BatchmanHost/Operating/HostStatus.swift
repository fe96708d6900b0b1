import Synchronization

/// The host's phase as operators see it: what `/health` and `/ready` answer, and what systemd
/// is told as the phase changes.
final class HostStatus: Sendable {
    enum Phase: Int, Equatable, Sendable {
        /// Loading plugins, replaying the spool: not yet reading input.
        case starting
        /// Reading input (or serving clients).
        case ready
        /// A reload is under way (still reading).
        case reloading
        /// Reading has stopped; accepted jobs are draining.
        case draining
    }

    private let current = Atomic<Int>(Phase.starting.rawValue)
    private let notifier: SystemdNotifier?

    init(notifier: SystemdNotifier?) {
        self.notifier = notifier
    }

    var phase: Phase { Phase(rawValue: current.load(ordering: .relaxed))! }

    /// `/health`: 200 until the drain, then 503.
    var isHealthy: Bool { phase != .draining }
    /// `/ready`: 200 once input is being read, 503 before and while draining.
    var isReady: Bool { phase == .ready || phase == .reloading }

    func ready(status: String) {
        current.store(Phase.ready.rawValue, ordering: .relaxed)
        notifier?.send("READY=1\nSTATUS=\(status)")
        notifier?.startWatchdog()
    }

    func reloading() {
        guard phase == .ready else { return }
        current.store(Phase.reloading.rawValue, ordering: .relaxed)
        // MONOTONIC_USEC: systemd 253 and later match the reload to this message by it.
        notifier?.send("RELOADING=1\nMONOTONIC_USEC=\(Syscall.monotonicNanoseconds() / 1000)")
    }

    func reloaded() {
        guard phase == .reloading else { return }
        current.store(Phase.ready.rawValue, ordering: .relaxed)
        notifier?.send("READY=1")
    }

    func draining() {
        guard phase != .draining else { return }
        current.store(Phase.draining.rawValue, ordering: .relaxed)
        notifier?.send("STOPPING=1")
    }

    /// The statistics line, for `systemctl status`.
    func report(_ statistics: String) {
        notifier?.send("STATUS=\(statistics)")
    }

    func stop() {
        notifier?.stop()
    }
}
