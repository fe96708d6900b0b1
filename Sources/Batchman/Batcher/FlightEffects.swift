// What an event of the settling half asks for: the values its events return.

extension FlightEngine {
    /// A deadline to set on the flush scheduler, at a duration since the clock origin.
    @usableFromInline struct ScheduledDeadline: Equatable, Sendable {
        @usableFromInline let deadline: BatcherDeadline
        @usableFromInline let at: Duration

        @usableFromInline init(deadline: BatcherDeadline, at: Duration) {
            self.deadline = deadline
            self.at = at
        }
    }

    /// A cut or timed-out batch, for events and logs.
    @usableFromInline struct BatchSummary: Equatable, Sendable {
        @usableFromInline let id: UInt64
        @usableFromInline let size: Int
        @usableFromInline let reason: FlushReason
    }

    /// What became of one job of a settled batch.
    @usableFromInline enum Fate: Equatable, Sendable {
        /// Completed, by the processor's outcome at its position.
        case completed
        /// Failed for good. `fromOutcome`: the processor's outcome at its position decided (its
        /// completion time counts); otherwise Batchman did (a timeout, attempts run out, a
        /// shutdown).
        case failed(FailureReason, String, fromOutcome: Bool)
        /// To be tried again as try `attempt` after `delay`, held under `token` meanwhile (a
        /// token in ``Effects/rejoin`` sends it back to the intake's open window at once).
        case retried(attempt: Int, delay: Duration, token: UInt64)
    }

    /// The fates of a batch's jobs, in the batch's order.
    @usableFromInline enum Fates: Equatable, Sendable {
        /// Every job met the same fate: what almost every batch gets, with no array to build.
        case all(Fate)
        case each([Fate])

        @inlinable subscript(position: Int) -> Fate {
            switch self {
            case .all(let fate): fate
            case .each(let fates): fates[position]
            }
        }
    }

    /// A batch whose jobs were settled.
    @usableFromInline struct Settled: Equatable, Sendable {
        @usableFromInline let batchId: UInt64
        /// The processor was called for it (its jobs count this attempt); false for a batch
        /// abandoned while it waited.
        @usableFromInline let ran: Bool
        @usableFromInline let fates: Fates
    }

    /// Held retries (`strict` ordering) sent again as a batch of their own.
    @usableFromInline struct Resent: Equatable, Sendable {
        @usableFromInline let token: UInt64
        @usableFromInline let batchId: UInt64
    }

    /// What the batcher carries out after an event, once the lock is released.
    @usableFromInline struct Effects: Equatable, Sendable {
        @usableFromInline var deadlines: [ScheduledDeadline] = []
        @usableFromInline var flushed: [BatchSummary] = []
        /// Batches to hand to the processor now, in order.
        @usableFromInline var started: [UInt64] = []
        @usableFromInline var timedOut: [BatchSummary] = []
        /// Batches whose jobs have their fates: results are due for those that left.
        @usableFromInline var settled: [Settled] = []
        /// Held retries that form a batch of their own now (before `started`, which may name it).
        @usableFromInline var resent: [Resent] = []
        /// Retries whose backoff is over: their jobs go back to the intake's open window.
        @usableFromInline var rejoin: [UInt64] = []
        /// Retries given up on (an abandoned drain): their jobs fail with `shutdown_batch`.
        @usableFromInline var abandonedRetries: [UInt64] = []
        /// Set when jobs leave: the token of their results, to report to ``deliveryFinished(_:)``
        /// once they are handed over (a drain waits for that).
        @usableFromInline var delivery: UInt64?
        /// The results to hand over now, by token: those of this event, when no earlier ones of
        /// the key are still going out, or, after ``deliveryFinished(_:)``, the next in line.
        @usableFromInline var handOver: UInt64?
        /// Jobs no longer held: room for blocked producers.
        @usableFromInline var released = 0
        /// The key's processor paused its new batches for this long (logged).
        @usableFromInline var paused: Duration?
        /// The drain is over: resume every drain waiter.
        @usableFromInline var drained = false

        @usableFromInline init() {}

        /// Whether any job leaves (and so results are handed over).
        var settlesJobs: Bool { !settled.isEmpty || !abandonedRetries.isEmpty }

        /// Nothing to do.
        @usableFromInline var isEmpty: Bool {
            deadlines.isEmpty && flushed.isEmpty && started.isEmpty && timedOut.isEmpty && settled.isEmpty && resent.isEmpty
                && rejoin.isEmpty && abandonedRetries.isEmpty && delivery == nil && handOver == nil && released == 0 && paused == nil && !drained
        }

        /// Adds `other`'s effects after these (several events under one lock).
        @usableFromInline mutating func append(_ other: Effects) {
            precondition(other.delivery == nil || delivery == nil, "one delivery token per event")
            deadlines += other.deadlines
            flushed += other.flushed
            started += other.started
            timedOut += other.timedOut
            settled += other.settled
            resent += other.resent
            rejoin += other.rejoin
            abandonedRetries += other.abandonedRetries
            delivery = delivery ?? other.delivery
            handOver = handOver ?? other.handOver
            released += other.released
            paused = other.paused ?? paused
            drained = drained || other.drained
        }
    }
}

extension FlightEngine.Effects {
    /// Carries out what needs nothing of the generic layer: sets deadlines on the scheduler for
    /// `target`, logs and reports cut and timed-out batches, and gives back room for producers.
    @usableFromInline func announce(
        for target: (any FlushTarget)?, key: String, config: BatcherConfig, scheduler: FlushScheduler, shared: BatchmanShared
    ) {
        if let target {
            for scheduled in deadlines { scheduler.schedule(target, scheduled.deadline, at: scheduled.at) }
        }
        for batch in flushed {
            if config.debug { shared.logger.log(.debug, "key \"\(key)\": batch \(batch.id) flushed by \(batch.reason) with \(batch.size) jobs") }
            shared.events.emit(.batchFlushed(key: key, batchId: batch.id, size: batch.size, reason: batch.reason))
        }
        for batch in timedOut {
            shared.logger.log(.warning, "key \"\(key)\": batch \(batch.id) overran its timeout; its \(batch.size) jobs were failed or retried, and the key waits for the call to return")
            shared.events.emit(.batchTimedOut(key: key, batchId: batch.id, size: batch.size))
        }
        if let paused {
            shared.logger.log(.info, "key \"\(key)\": new batches paused for \(paused), as its processor asked; jobs are still accepted")
        }
        if released > 0 { shared.released(released) }
    }
}
