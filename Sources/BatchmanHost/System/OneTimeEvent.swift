import Synchronization

/// Something that happens once (a generation has drained): waiters before it suspend, waiters
/// after it pass at once.
final class OneTimeEvent: Sendable {
    private struct State {
        var hasHappened = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    init(hasHappened: Bool = false) {
        state = Mutex(State(hasHappened: hasHappened))
    }

    var hasHappened: Bool { state.withLock { $0.hasHappened } }

    func happen() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.hasHappened = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                guard !state.hasHappened else { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
