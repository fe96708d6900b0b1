import Glibc
import Synchronization

/// `--max-processes`: how many plugin worker processes may live at once, over every isolated
/// entry and every configuration a reload keeps. The input never decides how many processes
/// the host forks: a key that needs a worker beyond the bound waits, never fails, until one is
/// retired; when one would wait, idle per-key workers are retired first to make room.
final class ProcessBudget: Sendable {
    static let defaultLimit = 256
    /// Descriptors the host keeps open for one worker: its socket, pidfd, outcome log and the
    /// pipe of its standard output.
    static let descriptorsPerWorker = 4
    /// Descriptors left for the host's own use: standard streams, input, output, spool, and a
    /// worker being started (its ends are open in the host until it has them).
    static let reservedDescriptors = 64

    /// The bound to keep: `asked`, lowered to what the process's descriptor limit (`ulimit -n`,
    /// `descriptorLimit`) lets that many workers hold, so a worker never fails to start for want
    /// of a descriptor (it waits instead).
    static func limit(asked: Int, descriptorLimit: Int) -> Int {
        min(asked, max(1, (descriptorLimit - reservedDescriptors) / descriptorsPerWorker))
    }

    /// The soft limit on open descriptors (`ulimit -n`).
    static func descriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return Int.max }
        return Int(clamping: limit.rlim_cur)  // RLIM_INFINITY is the largest value: clamped to Int.max
    }

    /// The decisions, with no closure in sight: waiters are tokens.
    struct StateMachine: Equatable {
        let limit: Int
        private(set) var held = 0
        private(set) var waiting: [UInt64] = []

        enum Acquire: Equatable {
            case granted
            /// Wait your turn; the caller asks for an idle worker to be retired to make room.
            case wait
        }

        init(limit: Int) { self.limit = limit }

        mutating func acquire(_ token: UInt64) -> Acquire {
            guard held >= limit || !waiting.isEmpty else {
                held += 1
                return .granted
            }
            waiting.append(token)
            return .wait
        }

        /// A place taken at once, past the bound if need be (a proof's worker).
        mutating func overdraw() {
            held += 1
        }

        /// A worker is gone: the first waiter, if any, has its place (returned), else the
        /// room is free. A place past the bound (overdrawn) is not passed on.
        mutating func release() -> UInt64? {
            guard held <= limit, !waiting.isEmpty else {
                held = max(0, held - 1)
                return nil
            }
            return waiting.removeFirst()  // the place passes on: `held` stays
        }
    }

    /// Retires one idle worker to make room; true if it did.
    typealias Evictor = @Sendable () -> Bool

    private struct State {
        var machine: StateMachine
        var grants: [UInt64: @Sendable () -> Void] = [:]
        var nextToken: UInt64 = 0
        var evictors: [UInt64: Evictor] = [:]
    }

    private let state: Mutex<State>

    init(limit: Int) {
        state = Mutex(State(machine: StateMachine(limit: limit)))
    }

    var limit: Int { state.withLock { $0.machine.limit } }

    /// Runs `granted` once a worker may be started: now, on this thread, or later on the
    /// thread that frees a place. Call ``release()`` once that worker is gone for good.
    func acquire(_ granted: @escaping @Sendable () -> Void) {
        let (action, evictors) = state.withLock { state -> (StateMachine.Acquire, [Evictor]) in
            state.nextToken += 1
            let action = state.machine.acquire(state.nextToken)
            if case .wait = action { state.grants[state.nextToken] = granted }
            return (action, Array(state.evictors.values))
        }
        switch action {
        case .granted: granted()
        case .wait:
            // An idle worker retired frees a place, which goes to the first waiter.
            for evictor in evictors where evictor() { break }
        }
    }

    /// A worker has just become idle: if a key waits for a place, retire an idle one for it.
    func offerIdle() {
        let evictors = state.withLock { state in state.machine.waiting.isEmpty ? [] : Array(state.evictors.values) }
        for evictor in evictors where evictor() { break }
    }

    /// Runs `granted` now, taking a place past the bound if need be; call ``release()`` after.
    func acquireNow(_ granted: @escaping @Sendable () -> Void) {
        state.withLock { $0.machine.overdraw() }
        granted()
    }

    func release() {
        let grant = state.withLock { state -> (@Sendable () -> Void)? in
            guard let token = state.machine.release() else { return nil }
            return state.grants.removeValue(forKey: token)
        }
        grant?()
    }

    /// Registers who can retire idle workers; returns the handle to unregister it with.
    func addEvictor(_ evictor: @escaping Evictor) -> UInt64 {
        state.withLock { state in
            state.nextToken += 1
            state.evictors[state.nextToken] = evictor
            return state.nextToken
        }
    }

    func removeEvictor(_ handle: UInt64) {
        _ = state.withLock { $0.evictors.removeValue(forKey: handle) }
    }
}
