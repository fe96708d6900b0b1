import Synchronization

/// Something with deadlines: told when one it scheduled is due.
@usableFromInline protocol FlushTarget: AnyObject, Sendable {
    /// `deadline` is due; one that no longer matters (a window already cut) is ignored.
    func deadlineReached(_ deadline: BatcherDeadline)
}

/// A flush target that is a closure, made where the batcher's types are known.
///
/// Why not the batcher itself: called through its `FlushTarget` conformance, a generic class's
/// method runs the unspecialised witness from this module, whatever types the caller uses. A
/// batch cut by its timer then starts, and completes, in unspecialised code, and so does every
/// batch after it (each completion starts the next): that was 60% of the host's time, by perf,
/// with its batches cut by time. A closure formed in specialised code calls specialised code.
@usableFromInline final class FlushCallback: FlushTarget {
    @usableFromInline let body: @Sendable (BatcherDeadline) -> Void

    @inlinable init(_ body: @escaping @Sendable (BatcherDeadline) -> Void) {
        self.body = body
    }

    @usableFromInline func deadlineReached(_ deadline: BatcherDeadline) { body(deadline) }
}

/// Owns every flush deadline of a ``Batchman`` with one timer task, however many keys there are.
///
/// The timer sleeps until the earliest deadline only; an earlier deadline re-arms it. So 100,000
/// idle keys cost a heap entry each and no wake-ups until their time comes. Deadlines are
/// durations since the clock's origin; the clock itself stays in the generic layer, which hands
/// over how to read it and how to sleep on it.
@usableFromInline final class FlushScheduler: Sendable {
    struct Entry {
        let target: any FlushTarget
        let deadline: BatcherDeadline
    }

    private let now: @Sendable () -> Duration
    private let sleepUntil: @Sendable (Duration) async throws -> Void
    private let state = Mutex(FlushSchedulerStateMachine<Entry>())

    /// - Parameters:
    ///   - now: the time since the clock's origin.
    ///   - sleepUntil: sleeps until that time since the origin (throws when cancelled).
    @usableFromInline init(now: @escaping @Sendable () -> Duration, sleepUntil: @escaping @Sendable (Duration) async throws -> Void) {
        self.now = now
        self.sleepUntil = sleepUntil
    }

    /// Calls `target.deadlineReached(deadline)` once `instant` (since the origin) has passed.
    @usableFromInline func schedule(_ target: any FlushTarget, _ deadline: BatcherDeadline, at instant: Duration) {
        let action = state.withLock { $0.schedule(Entry(target: target, deadline: deadline), at: instant) }
        run(action)
    }

    /// Drops every deadline and cancels the timer; used once every key has drained.
    @usableFromInline func stop() {
        state.withLock { $0.stop() }?.cancel()
    }

    private func timerFired(generation: UInt64) {
        let now = now()
        let (due, next) = state.withLock { $0.timerFired(generation: generation, now: now) }
        run(next)
        for entry in due { entry.target.deadlineReached(entry.deadline) }
    }

    private func run(_ action: FlushSchedulerStateMachine<Entry>.ArmAction) {
        guard case .arm(let deadline, let generation, let previous) = action else { return }
        previous?.cancel()
        let timer = Task { [weak self, sleepUntil] in
            do {
                try await sleepUntil(deadline)
            } catch {
                return  // Cancelled: an earlier deadline re-armed the scheduler, or it stopped.
            }
            self?.timerFired(generation: generation)
        }
        if !state.withLock({ $0.attach(timer, generation: generation) }) { timer.cancel() }
    }
}
