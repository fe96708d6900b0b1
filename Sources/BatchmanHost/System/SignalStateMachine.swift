import Glibc

/// What the host does with each signal it takes, by phase. Pure: ``SignalWatcher`` carries out
/// the action it returns.
///
/// | signal | starting (loading plugins) | running | stopping (draining) |
/// |---|---|---|---|
/// | INT, TERM, QUIT | exit at once (nothing accepted yet) | stop reading, drain | exit at once |
/// | HUP | ignored, with a warning | reload the manifest and plugins | ignored, with a warning |
/// | USR1 / USR2 | ignored | statistics line / one per key | same |
struct SignalStateMachine: Equatable {
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

    /// Starting is over: jobs are being read.
    mutating func started() {
        if phase == .starting { phase = .running }
    }

    mutating func received(_ signal: Int32) -> Action {
        let name = Self.name(signal)
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

    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGQUIT: "SIGQUIT"
        case SIGHUP: "SIGHUP"
        case SIGUSR1: "SIGUSR1"
        case SIGUSR2: "SIGUSR2"
        case SIGPIPE: "SIGPIPE"
        case SIGKILL: "SIGKILL"
        case SIGSEGV: "SIGSEGV"
        case SIGABRT: "SIGABRT"
        case SIGBUS: "SIGBUS"
        case SIGFPE: "SIGFPE"
        case SIGILL: "SIGILL"
        case SIGTRAP: "SIGTRAP"
        case SIGXCPU: "SIGXCPU"
        default: "signal \(signal)"
        }
    }
}
