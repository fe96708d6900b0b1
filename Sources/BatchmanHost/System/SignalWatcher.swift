import Glibc

/// Takes SIGINT and SIGTERM on a normal thread with sigwait, so no signal handler ever runs:
/// plugin runtimes (Go installs its own handlers) never see one of ours, and the response to a
/// signal can do anything an ordinary thread can.
enum SignalWatcher {
    static let watchedSignals: [Int32] = [SIGINT, SIGTERM]

    /// Blocks the watched signals in the calling thread and every thread it starts later. Call
    /// it first thing in `main`, before any thread exists and before any plugin is loaded.
    /// Also ignores SIGPIPE, so a closed output is an error from write, not a silent death.
    static func blockSignals() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// Starts the watching thread. The first signal calls `onFirst`; a second one exits the
    /// process at once with 128 + its number, as a shell would report it.
    static func start(onFirst: @escaping @Sendable (Int32) -> Void) {
        DedicatedThread.start(name: "batchman-signal") {
            var set = signalSet()
            var received: Int32 = 0
            guard sigwait(&set, &received) == 0 else { return }
            onFirst(received)
            guard sigwait(&set, &received) == 0 else { return }
            let message = "batchman: second signal (\(signalName(received))): exiting now without draining\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            _exit(128 + received)
        }
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(signal)"
        }
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in watchedSignals { sigaddset(&set, signal) }
        return set
    }
}
