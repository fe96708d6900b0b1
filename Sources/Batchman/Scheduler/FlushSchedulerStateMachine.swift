/// Decides when the one timer of a ``FlushScheduler`` sleeps until, and what is due when it wakes.
///
/// Deadlines that no longer matter (a batch cut by size before its time) are not removed: the
/// target ignores a stale window when it fires. That keeps scheduling O(log n) with no index.
@usableFromInline struct FlushSchedulerStateMachine<Instant: InstantProtocol, Target> {
    @inlinable init() {}

    @usableFromInline struct Armed {
        @inlinable init(deadline: Instant, generation: UInt64, timer: Task<Void, Never>?) {
            self.deadline = deadline
            self.generation = generation
            self.timer = timer
        }

        @usableFromInline let deadline: Instant
        @usableFromInline let generation: UInt64
        @usableFromInline var timer: Task<Void, Never>?
    }

    @usableFromInline enum ArmAction {
        case none
        /// Start a timer for `deadline` tagged `generation`, and cancel the previous one.
        case arm(deadline: Instant, generation: UInt64, cancelling: Task<Void, Never>?)
    }

    @usableFromInline var heap = DeadlineHeap<Instant, Target>()
    @usableFromInline var armed: Armed?
    @usableFromInline var generation: UInt64 = 0
    @usableFromInline var isStopped = false

    @inlinable var pendingCount: Int { heap.count }

    @inlinable mutating func schedule(_ target: Target, at deadline: Instant) -> ArmAction {
        guard !isStopped else { return .none }
        heap.push(target, at: deadline)
        if let armed, armed.deadline <= deadline { return .none }
        return arm(deadline)
    }

    /// The timer tagged `generation` woke at `now`: returns the due targets and the next arming.
    @inlinable mutating func timerFired(generation firedGeneration: UInt64, now: Instant) -> (due: [Target], next: ArmAction) {
        guard let current = armed, current.generation == firedGeneration else { return ([], .none) }
        armed = nil
        var due: [Target] = []
        while let target = heap.popDue(at: now) { due.append(target) }
        guard let earliest = heap.earliest else { return (due, .none) }
        return (due, arm(earliest))
    }

    /// Keeps the task of the timer tagged `generation`; returns false if it is already stale.
    @inlinable mutating func attach(_ timer: Task<Void, Never>, generation taskGeneration: UInt64) -> Bool {
        guard armed?.generation == taskGeneration else { return false }
        armed?.timer = timer
        return true
    }

    /// Forgets every deadline; returns the timer to cancel.
    @inlinable mutating func stop() -> Task<Void, Never>? {
        isStopped = true
        heap.removeAll()
        defer { armed = nil }
        return armed?.timer
    }

    @inlinable mutating func arm(_ deadline: Instant) -> ArmAction {
        generation &+= 1
        let previous = armed?.timer
        armed = Armed(deadline: deadline, generation: generation, timer: nil)
        return .arm(deadline: deadline, generation: generation, cancelling: previous)
    }
}
