import Glibc

/// What the host does with each signal it takes, by phase. Pure: ``SignalWatcher`` carries out
/// the action it returns.
///
/// | signal | starting (loading plugins) | running | stopping (draining) |
/// |---|---|---|---|
/// | INT, TERM, QUIT | exit at once (nothing accepted yet) | stop reading, drain | exit at once |
/// | HUP | ignored, with a warning | reload the manifest and plugins | ignored, with a warning |
/// | USR1 / USR2 | ignored | statistics line / one per key | same |
///
/// A signal the process sent itself (the Swift runtime's crash backtracer signals its own
/// threads) is no request, and is ignored. Under a supervising parent (``Supervisor``) a signal
/// can arrive twice, once sent to the host and once passed on by the parent (a `kill` of the
/// whole process group, systemd's stop of the whole cgroup): the second of such a pair is
/// ignored, so one stop never counts as two.
struct SignalStateMachine: Equatable {
    /// Who sent a signal, as `sigwaitinfo` says.
    enum Origin: Equatable {
        /// This process itself: not a request.
        case ownProcess
        /// Sent to the host by process `sender` (0: the kernel, as for a terminal's Ctrl-C).
        case direct(sender: Int32)
        /// Passed on by the supervising parent, which had it from process `sender`.
        case forwarded(sender: Int32)
    }

    /// A signal seen by one route and not yet by the other.
    private struct Receipt: Equatable {
        let signal: Int32
        let sender: Int32
        let wasForwarded: Bool
    }

    enum Phase: Equatable {
        case starting
        case running
        case stopping
    }

    enum Action: Equatable {
        /// Exit now with this status, saying why.
        case exitAtOnce(status: Int32, message: String)
        /// Stop reading input and drain what was accepted.
        case stop
        /// Log this warning and carry on.
        case warn(String)
        /// Reload the manifest and the plugins.
        case reload
        /// Print the statistics line, and the per-key lines too if `perKey`.
        case printStatistics(perKey: Bool)
        case ignore
    }

    /// Every signal the host takes; all are blocked in every thread and waited for by one.
    static let handled: [Int32] = [SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2]

    private(set) var phase = Phase.starting
    /// The last few signals seen by one route only: the other may bring them again.
    private var unmatched: [Receipt] = []

    /// Starting is over: jobs are being read.
    mutating func started() {
        if phase == .starting { phase = .running }
    }

    mutating func received(_ signal: Int32, from origin: Origin = .direct(sender: 0)) -> Action {
        switch origin {
        case .ownProcess:
            return .ignore
        case .direct(let sender), .forwarded(let sender):
            let wasForwarded = origin == .forwarded(sender: sender)
            if let twin = unmatched.firstIndex(of: Receipt(signal: signal, sender: sender, wasForwarded: !wasForwarded)) {
                unmatched.remove(at: twin)
                return .ignore  // the same request, come the other way
            }
            unmatched.append(Receipt(signal: signal, sender: sender, wasForwarded: wasForwarded))
            if unmatched.count > 16 { unmatched.removeFirst() }
        }
        return decide(signal)
    }

    private mutating func decide(_ signal: Int32) -> Action {
        let name = SignalName.of(signal)
        switch signal {
        case SIGINT, SIGTERM, SIGQUIT:
            switch phase {
            case .starting:
                return .exitAtOnce(status: 128 + signal, message: "received \(name) while starting: exiting (no job had been accepted)")
            case .running:
                phase = .stopping
                return .stop
            case .stopping:
                return .exitAtOnce(status: 128 + signal, message: "second signal (\(name)): exiting now without draining")
            }
        case SIGHUP:
            switch phase {
            case .starting: return .warn("received SIGHUP while starting: ignored (the configuration on disk is being loaded now)")
            case .running: return .reload
            case .stopping: return .warn("received SIGHUP while draining: ignored (the host is stopping)")
            }
        case SIGUSR1, SIGUSR2:
            return phase == .starting ? .ignore : .printStatistics(perKey: signal == SIGUSR2)
        default:
            return .ignore
        }
    }
}
