import Synchronization

/// Something that happens once (a generation has drained): what waits for it before it happens
/// runs when it does, what waits after runs at once.
final class OneTimeEvent: Sendable {
    private struct State {
        var hasHappened = false
        var waiters: [@Sendable () -> Void] = []
    }

    private let state: Mutex<State>

    init(hasHappened: Bool = false) {
        state = Mutex(State(hasHappened: hasHappened))
    }

    var hasHappened: Bool { state.withLock { $0.hasHappened } }

    func happen() {
        let waiters = state.withLock { state -> [@Sendable () -> Void] in
            state.hasHappened = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter() }
    }

    /// Runs `action` once the event has happened: now, on this thread, if it has; else on the
    /// thread that makes it happen.
    func whenHappened(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            guard !state.hasHappened else { return true }
            state.waiters.append(action)
            return false
        }
        if now { action() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in whenHappened { continuation.resume() } }
    }
}
