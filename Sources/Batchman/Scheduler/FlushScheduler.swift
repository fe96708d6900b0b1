import Synchronization

/// Something with deadlines: told when one it scheduled is due.
@usableFromInline protocol FlushTarget: AnyObject, Sendable {
    /// `deadline` is due; one that no longer matters (a window already cut) is ignored.
    func deadlineReached(_ deadline: BatcherDeadline)
}

/// Owns every flush deadline of a ``Batchman`` with one timer task, however many keys there are.
///
/// The timer sleeps until the earliest deadline only; an earlier deadline re-arms it. So 100,000
/// idle keys cost a heap entry each and no wake-ups until their time comes.
@usableFromInline final class FlushScheduler<C: Clock>: Sendable {
    @usableFromInline struct Entry: Sendable {
        @inlinable init(target: any FlushTarget, deadline: BatcherDeadline) {
            self.target = target
            self.deadline = deadline
        }

        @usableFromInline let target: any FlushTarget
        @usableFromInline let deadline: BatcherDeadline
    }

    @usableFromInline let clock: C
    @usableFromInline let state = Mutex(FlushSchedulerStateMachine<C.Instant, Entry>())

    @inlinable init(clock: C) {
        self.clock = clock
    }

    @inlinable var now: C.Instant { clock.now }

    /// Calls `target.deadlineReached(deadline)` once `instant` has passed.
    @inlinable func schedule(_ target: any FlushTarget, _ deadline: BatcherDeadline, at instant: C.Instant) {
        let action = state.withLock { $0.schedule(Entry(target: target, deadline: deadline), at: instant) }
        run(action)
    }

    /// Suspends for `duration` on the scheduler's clock.
    @inlinable func sleep(for duration: C.Duration) async throws {
        try await clock.sleep(until: clock.now.advanced(by: duration), tolerance: nil)
    }

    /// Drops every deadline and cancels the timer; used once every key has drained.
    @inlinable func stop() {
        state.withLock { $0.stop() }?.cancel()
    }

    @inlinable func timerFired(generation: UInt64) {
        let now = clock.now
        let (due, next) = state.withLock { $0.timerFired(generation: generation, now: now) }
        run(next)
        for entry in due { entry.target.deadlineReached(entry.deadline) }
    }

    @inlinable func run(_ action: FlushSchedulerStateMachine<C.Instant, Entry>.ArmAction) {
        guard case .arm(let deadline, let generation, let previous) = action else { return }
        previous?.cancel()
        let clock = self.clock
        let timer = Task { [weak self] in
            do {
                try await clock.sleep(until: deadline, tolerance: nil)
            } catch {
                return  // Cancelled: an earlier deadline re-armed the scheduler, or it stopped.
            }
            self?.timerFired(generation: generation)
        }
        if !state.withLock({ $0.attach(timer, generation: generation) }) { timer.cancel() }
    }
}
