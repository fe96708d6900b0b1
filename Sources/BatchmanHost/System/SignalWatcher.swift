import Batchman
import Glibc
import Synchronization

/// Takes the host's signals on a normal thread with sigwait, so no signal handler ever runs:
/// plugin runtimes (Go installs its own handlers) never see one of ours, and the response to a
/// signal can do anything an ordinary thread can. What each signal does is decided by
/// ``SignalStateMachine``.
final class SignalWatcher: Sendable {
    /// What the running host does on request.
    struct Responses: Sendable {
        /// Stop reading input; the drain follows.
        var stop: @Sendable (_ signalName: String) -> Void
        var printStatistics: @Sendable (_ perKey: Bool) -> Void
        /// Reload the manifest and the plugins.
        var reload: @Sendable () -> Void
    }

    private struct State {
        var machine = SignalStateMachine()
        var responses: Responses?
    }

    static let shared = SignalWatcher()

    private let state = Mutex(State())
    private let logger = BatchmanLogger.standardError

    /// Blocks the handled signals in the calling thread and every thread it starts later, and
    /// starts taking them at once, so Ctrl-C works while plugins load. Call first thing in
    /// `main`, before any other thread exists and before any plugin is loaded. Also ignores
    /// SIGPIPE: a closed output is an error from write (handled as such), not a silent death.
    func start() {
        var set = Self.signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
        DedicatedThread.start(name: "batchman-signal") { [self] in
            var set = Self.signalSet()
            var received: Int32 = 0
            while sigwait(&set, &received) == 0 { handle(received) }
        }
    }

    /// The host is running: stop signals now drain instead of exiting.
    func running(_ responses: Responses) {
        state.withLock { state in
            state.responses = responses
            state.machine.started()
        }
    }

    private func handle(_ signal: Int32) {
        let (action, responses) = state.withLock { state in (state.machine.received(signal), state.responses) }
        switch action {
        case .exitAtOnce(let status, let message):
            let line = "batchman: \(message)\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            _exit(status)
        case .stop:
            responses?.stop(SignalStateMachine.name(signal))
        case .warn(let message):
            logger.log(.warning, message)
        case .printStatistics(let perKey):
            responses?.printStatistics(perKey)
        case .reload:
            responses?.reload()
        case .ignore:
            break
        }
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in SignalStateMachine.handled { sigaddset(&set, signal) }
        return set
    }
}
