import Batchman
import Synchronization

/// The calls of one plugin instance (in-process or in a worker process): how many run, which
/// wait their turn, and the instance's release once the last call has returned.
///
/// A non-concurrent instance takes one call at a time; the others wait here, holding no
/// thread, so a busy instance never parks the worker threads other keys need.
final class CallQueue: Sendable {
    private enum Phase {
        case live
        /// Release was asked for while calls ran: the last one to return does it.
        case closing(control: WorkerPool, release: @Sendable () -> Void)
        case released
    }

    /// A call: runs on a worker thread and returns what to do once the instance has been
    /// marked idle (hand the outcomes over), so that whoever gets them finds it idle.
    typealias Call = @Sendable () -> (@Sendable () -> Void)

    private struct State {
        var running = 0
        var waiting = FIFOQueue<Call>()
        var phase = Phase.live
    }

    private let isConcurrent: Bool
    private let state = Mutex(State())

    init(isConcurrent: Bool) {
        self.isConcurrent = isConcurrent
    }

    /// Runs `call` on one of `workers` once the instance may take it: at once if it is
    /// concurrent, else when its previous call has returned.
    func schedule(_ call: @escaping Call, on workers: WorkerPool) {
        let startNow = state.withLock { state -> Bool in
            guard isConcurrent || state.running == 0 else {
                state.waiting.append(call)
                return false
            }
            state.running += 1
            return true
        }
        if startNow { workers.submit { [self] in runThenStartNext(call, on: workers) } }
    }

    /// Takes the instance out of service. Returns true if it is idle: the caller releases it
    /// now. False: a call is still running, and `release` runs on `control` when it returns
    /// (or never, if the process exits first): an instance is never released during a call.
    func close(releasingLaterOn control: WorkerPool, release: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { state -> Bool in
            guard case .live = state.phase else { return false }
            guard state.running == 0 else {
                state.phase = .closing(control: control, release: release)
                return false
            }
            state.phase = .released
            return true
        }
    }

    private func runThenStartNext(_ call: @escaping Call, on workers: WorkerPool) {
        let handOver = call()
        let (next, release) = state.withLock { state -> (Call?, (WorkerPool, @Sendable () -> Void)?) in
            if let next = state.waiting.popFirst() { return (next, nil) }
            state.running -= 1
            guard state.running == 0, case .closing(let control, let release) = state.phase else { return (nil, nil) }
            state.phase = .released
            return (nil, (control, release))
        }
        // The next call goes to the back of the pool's queue: other keys' batches get their turn.
        if let next { workers.submit { [self] in runThenStartNext(next, on: workers) } }
        if let (control, release) = release { control.submit(release) }
        handOver()
    }
}
