/// Decides when the one timer of a ``FlushScheduler`` sleeps until, and what is due when it wakes.
///
/// Deadlines that no longer matter (a batch cut by size before its time) are not removed: the
/// target ignores a stale window when it fires. That keeps scheduling O(log n) with no index.
struct FlushSchedulerStateMachine<Target> {
    enum Phase {
        /// No timer runs: no deadline is pending.
        case idle
        /// A timer sleeps until `deadline`; `timer` is its task once attached.
        case armed(deadline: Duration, generation: UInt64, timer: Task<Void, Never>?)
        /// Every key drained: deadlines are dropped.
        case stopped
    }

    enum ArmAction {
        case none
        /// Start a timer for `deadline` tagged `generation`, and cancel the previous one.
        case arm(deadline: Duration, generation: UInt64, cancelling: Task<Void, Never>?)
    }

    private var heap = DeadlineHeap<Target>()
    private(set) var phase = Phase.idle
    private var generation: UInt64 = 0

    var pendingCount: Int { heap.count }

    mutating func schedule(_ target: Target, at deadline: Duration) -> ArmAction {
        switch phase {
        case .stopped:
            return .none
        case .armed(let armedDeadline, _, _) where armedDeadline <= deadline:
            heap.push(target, at: deadline)
            return .none
        case .idle, .armed:
            heap.push(target, at: deadline)
            return arm(deadline)
        }
    }

    /// The timer tagged `generation` woke at `now`: returns the due targets and the next arming.
    mutating func timerFired(generation firedGeneration: UInt64, now: Duration) -> (due: [Target], next: ArmAction) {
        guard case .armed(_, let generation, _) = phase, generation == firedGeneration else { return ([], .none) }
        phase = .idle
        var due: [Target] = []
        while let target = heap.popDue(at: now) { due.append(target) }
        guard let earliest = heap.earliest else { return (due, .none) }
        return (due, arm(earliest))
    }

    /// Keeps the task of the timer tagged `generation`; returns false if it is already stale.
    mutating func attach(_ timer: Task<Void, Never>, generation taskGeneration: UInt64) -> Bool {
        guard case .armed(let deadline, let generation, _) = phase, generation == taskGeneration else { return false }
        phase = .armed(deadline: deadline, generation: generation, timer: timer)
        return true
    }

    /// Forgets every deadline; returns the timer to cancel.
    mutating func stop() -> Task<Void, Never>? {
        defer {
            phase = .stopped
            heap.removeAll()
        }
        guard case .armed(_, _, let timer) = phase else { return nil }
        return timer
    }

    private mutating func arm(_ deadline: Duration) -> ArmAction {
        generation &+= 1
        var previous: Task<Void, Never>?
        if case .armed(_, _, let timer) = phase { previous = timer }
        phase = .armed(deadline: deadline, generation: generation, timer: nil)
        return .arm(deadline: deadline, generation: generation, cancelling: previous)
    }
}
