import Batchman
import CBatchmanSystem
import Glibc
import Synchronization

/// Takes the host's signals on a normal thread from a signalfd, so no signal handler ever runs:
/// plugin runtimes (Go installs its own handlers) never see one of ours, and the response to a
/// signal can do anything an ordinary thread can. What each signal does is decided by
/// ``SignalStateMachine``.
///
/// A signalfd, not sigwaitinfo: a thread in sigwaitinfo has the waited signals unblocked, and
/// the Swift runtime's crash handler, pausing every thread before it prints the backtrace, picks
/// SIGUSR1 for it; the wait swallowed it, and a crashing host lay 32 s in the crash handler
/// (16 waits of 2 s) before its parent could say what happened. Waiting on a descriptor leaves
/// the mask alone, so the handler sends SIGPROF, which pauses the thread at once.
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
        let descriptor = bm_signalfd(&set)
        precondition(descriptor >= 0, "signalfd failed: \(String(cString: strerror(errno))); the host cannot take its signals")
        DedicatedThread.start(name: "batchman-signal") { [self] in
            var code: Int32 = 0, sender: Int32 = 0, value: Int32 = 0
            while case let received = bm_signalfd_read(descriptor, &code, &sender, &value), received > 0 {
                handle(received, from: Self.origin(code: code, sender: sender, value: value))
            }
        }
    }

    /// The host is running: stop signals now drain instead of exiting.
    func running(_ responses: Responses) {
        state.withLock { state in
            state.responses = responses
            state.machine.started()
        }
    }

    /// Who sent a signal: this process (the runtime's backtracer), the supervising parent
    /// passing one on, or anyone else.
    static func origin(code: Int32, sender: Int32, value: Int32) -> SignalStateMachine.Origin {
        let fromUser = code <= 0  // SI_USER (kill), SI_QUEUE, SI_TKILL: sent by a process; > 0: the kernel
        if fromUser, sender == getpid() { return .ownProcess }
        if code == -1 /* SI_QUEUE */, let parent = HostProcessIdentity.supervisor, sender == parent { return .forwarded(sender: value) }
        return .direct(sender: fromUser ? sender : 0)
    }

    private func handle(_ signal: Int32, from origin: SignalStateMachine.Origin) {
        let (action, responses) = state.withLock { state in (state.machine.received(signal, from: origin), state.responses) }
        switch action {
        case .exitAtOnce(let status, let message):
            let line = "batchman: \(message)\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            SupervisorBoard.shared?.finish(status: status)
            _exit(status)
        case .stop:
            responses?.stop(SignalName.of(signal))
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
