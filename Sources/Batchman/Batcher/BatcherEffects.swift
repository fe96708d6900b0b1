// What an event of the batcher's engine asks for: the values its events return.

extension BatcherEngine {
    /// A deadline to set on the flush scheduler, at a duration since the clock origin.
    @usableFromInline struct ScheduledDeadline: Equatable, Sendable {
        let deadline: BatcherDeadline
        let at: Duration
    }

    /// A batch that goes to the processor now: its jobs by slot, in order.
    @usableFromInline struct StartedBatch: Equatable, Sendable {
        @usableFromInline let id: UInt64
        @usableFromInline let reason: FlushReason
        @usableFromInline let slots: [Int]
    }

    /// A cut or timed-out batch, for events and logs.
    @usableFromInline struct BatchSummary: Equatable, Sendable {
        @usableFromInline let id: UInt64
        let size: Int
        let reason: FlushReason
    }

    /// A job's final verdict, for the batcher to turn into its result.
    @usableFromInline struct Settlement: Equatable, Sendable {
        @usableFromInline enum Outcome: Equatable, Sendable {
            case completed
            case failed(FailureReason, String)
        }

        @usableFromInline let slot: Int
        /// The batch that produced it; nil for a job that never reached one.
        @usableFromInline let batchId: UInt64?
        @usableFromInline let attempts: Int
        /// The job's position in its batch when the processor's outcome decided (its output and
        /// completion time come from there); nil when Batchman decided (timeout, retries ran out,
        /// shutdown).
        @usableFromInline let position: Int?
        @usableFromInline let outcome: Outcome
    }

    @usableFromInline struct RetriedJob: Equatable, Sendable {
        @usableFromInline let slot: Int
        @usableFromInline let attempt: Int
        @usableFromInline let delay: Duration
    }

    /// What the batcher carries out after an event, once the lock is released.
    @usableFromInline struct Effects: Equatable, Sendable {
        @usableFromInline var deadlines: [ScheduledDeadline] = []
        var flushed: [BatchSummary] = []
        @usableFromInline var started: [StartedBatch] = []
        @usableFromInline var timedOut: [BatchSummary] = []
        @usableFromInline var retried: [RetriedJob] = []
        /// Jobs whose results are due: their slots are free once this event returns, so the
        /// batcher takes their entries out under the same lock.
        @usableFromInline var settled: [Settlement] = []
        /// Set with `settled`: the token to report to ``deliveryFinished(_:now:)`` once their
        /// results are handed over (a drain waits for that).
        @usableFromInline var delivery: UInt64?
        /// Jobs no longer held: room for blocked producers.
        var released = 0
        /// The key's processor paused its new batches for this long (logged).
        var paused: Duration?
        /// The drain is over: resume every drain waiter.
        @usableFromInline var drained = false
        /// The key holds no job, and the engine let go of its storage for jobs: the batcher lets
        /// go of its entries too.
        @usableFromInline var releasedStorage = false

        @usableFromInline init() {}

        /// Nothing to do: what almost every submit returns.
        @usableFromInline var isEmpty: Bool {
            deadlines.isEmpty && flushed.isEmpty && started.isEmpty && timedOut.isEmpty && retried.isEmpty
                && settled.isEmpty && delivery == nil && released == 0 && !drained && !releasedStorage && paused == nil
        }

        /// Adds `other`'s effects after these (several submits under one lock; none settles a job).
        @usableFromInline mutating func append(_ other: Effects) {
            precondition(other.delivery == nil || delivery == nil, "one delivery token per event")
            deadlines += other.deadlines
            flushed += other.flushed
            started += other.started
            timedOut += other.timedOut
            retried += other.retried
            settled += other.settled
            delivery = delivery ?? other.delivery
            released += other.released
            paused = other.paused ?? paused
            drained = drained || other.drained
        }
    }
}

extension BatcherEngine.Effects {
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
