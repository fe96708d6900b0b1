import FoundationEssentials
import Synchronization

/// One key's batcher: a ``BatcherStateMachine`` behind a lock, and the hands that carry out its
/// actions (setting deadlines, calling the processor, delivering results) outside the lock.
@usableFromInline final class Batcher<Payload: Sendable, Output: Sendable, C: Clock>: FlushTarget, Sendable
where C.Duration == Duration {
    @usableFromInline typealias StateMachine = BatcherStateMachine<Payload, Output, C.Instant>

    @usableFromInline let key: String
    @usableFromInline let config: BatcherConfig
    @usableFromInline let state: Mutex<StateMachine>
    @usableFromInline let processor: any BatchProcessor<Payload, Output>
    @usableFromInline let scheduler: FlushScheduler<C>
    @usableFromInline let shared: BatchmanShared
    /// The processor reports when each call really begins (``QueueingBatchProcessor``).
    @usableFromInline let processorReportsCallStart: Bool

    @inlinable init(
        key: String, config: BatcherConfig, processor: any BatchProcessor<Payload, Output>,
        scheduler: FlushScheduler<C>, shared: BatchmanShared, jitter: @escaping StateMachine.Jitter
    ) {
        self.key = key
        self.config = config
        self.state = Mutex(StateMachine(key: key, config: config, batchIds: shared.batchIds, jitter: jitter))
        self.processor = processor
        self.scheduler = scheduler
        self.shared = shared
        self.processorReportsCallStart = processor is any QueueingBatchProcessor
    }

    @inlinable var events: EventBroadcaster { shared.events }
    @inlinable var logger: BatchmanLogger { shared.logger }

    @usableFromInline enum Submission {
        case accepted(Job<Payload>)
        /// Refused; the handler already has its failed result.
        case refused(Job<Payload>)
        /// The key is at `maxPending`.
        case full
    }

    /// Accepts `job`, answers `handler` at once with the reason it was refused, or says the key is full.
    @inlinable func submit(_ job: Job<Payload>, size: Int, handler: StateMachine.Handler) -> Submission {
        let now = scheduler.now
        switch state.withLock({ $0.submit(job, size: size, handler: handler, now: now) }) {
        case .accepted(let actions):
            if events.isActive { events.emit(.jobAccepted(key: job.key, id: job.id)) }
            perform(actions)
            return .accepted(job)
        case .rejected(let reason, let message):
            return .refused(shared.refuse(job, reason: reason, message: message, handler: handler, debug: config.debug))
        case .full:
            return .full
        }
    }

    /// Submits `jobs` under one lock: accepts each, or refuses it (its handler is answered),
    /// until the key is full.
    /// - Returns: how many of `jobs` were taken (accepted or refused), fewer than all when the
    ///   key is at `maxPending`, and how many of those were refused.
    @inlinable func submit(
        contentsOf jobs: ArraySlice<Job<Payload>>, sizes: (Payload) -> Int, handler: StateMachine.Handler
    ) -> (taken: Int, refused: Int) {
        let now = scheduler.now
        let reportsAccepted = events.isActive
        var actions = StateMachine.Actions()
        var accepted: [Job<Payload>] = []
        var refused: [(Job<Payload>, FailureReason, String)] = []
        let taken = state.withLock { machine -> Int in
            var taken = 0
            for job in jobs {
                switch machine.submit(job, size: sizes(job.payload), handler: handler, now: now) {
                case .accepted(let jobActions):
                    actions.append(jobActions)
                    if reportsAccepted { accepted.append(job) }
                case .rejected(let reason, let message):
                    refused.append((job, reason, message))
                case .full:
                    return taken
                }
                taken += 1
            }
            return taken
        }
        if reportsAccepted { events.emit(accepted.map { .jobAccepted(key: $0.key, id: $0.id) }) }
        perform(actions)
        for (job, reason, message) in refused {
            _ = shared.refuse(job, reason: reason, message: message, handler: handler, debug: config.debug)
        }
        return (taken, refused.count)
    }

    @inlinable func job(_ identity: JobIdentity) -> Job<Payload>? {
        state.withLock { $0.job(identity) }
    }

    @inlinable var statistics: BatcherStatistics {
        state.withLock { $0.statistics }
    }

    @inlinable func deadlineReached(_ deadline: BatcherDeadline) {
        let now = scheduler.now
        let wallTime = Date()
        let actions = state.withLock { $0.deadlineReached(deadline, now: now, wallTime: wallTime) }
        perform(actions)
        // Jobs settled by a timeout: handed over by a task of their own, as the scheduler's
        // timer must not wait for callbacks.
        if !actions.deliveries.isEmpty { Task { await self.deliver(actions.deliveries, of: nil) } }
    }

    /// Refuses new jobs and calls `onDrained` once every accepted job has its result.
    @inlinable func drain(onDrained: @escaping StateMachine.DrainWaiter) {
        let now = scheduler.now
        perform(state.withLock { $0.drain(onDrained, now: now) })
    }

    /// Fails every job still held with `shutdown_batch` and `message`.
    @inlinable func abandon(_ message: String) async {
        let now = scheduler.now
        let actions = state.withLock { $0.abandon(reason: message, now: now, wallTime: Date()) }
        perform(actions)
        await deliver(actions.deliveries, of: nil)
    }

    /// Carries out everything in `actions` but its deliveries, which the caller hands over.
    @inlinable func perform(_ actions: StateMachine.Actions) {
        for (deadline, instant) in actions.schedule { scheduler.schedule(self, deadline, at: instant) }
        for batch in actions.flushed {
            if config.debug { logger.log(.debug, "key \"\(key)\": batch \(batch.id) flushed by \(batch.reason) with \(batch.jobs.count) jobs") }
            events.emit(.batchFlushed(key: key, batchId: batch.id, size: batch.jobs.count, reason: batch.reason))
        }
        for batch in actions.timedOut {
            logger.log(.warning, "key \"\(key)\": batch \(batch.id) overran its timeout; its \(batch.jobs.count) jobs were failed or retried, and the key waits for the call to return")
            events.emit(.batchTimedOut(key: key, batchId: batch.id, size: batch.jobs.count))
        }
        if events.isActive {
            events.emit(actions.retries.map { .jobRetried(key: $0.job.key, id: $0.job.id, attempt: $0.job.attempt, delay: $0.delay) })
        }
        for warning in actions.warnings { logger.log(.warning, warning) }
        if actions.released > 0 { shared.released(actions.released) }
        for batch in actions.start {
            Task { await self.run(batch) }
        }
        for waiter in actions.drained { waiter() }
    }

    @inlinable func run(_ batch: Batch<Payload>) async {
        var batch = batch
        if processorReportsCallStart {
            batch.callStarter = { [self, id = batch.id] in callStarted(id) }
        } else if !callStarted(batch.id) {
            return
        }
        let outcome: Result<[JobOutcome<Output>], any Error>
        do {
            outcome = .success(try await processor.process(batch))
        } catch {
            outcome = .failure(error)
        }
        // The next batch starts before these results are handed over, so a slow callback
        // never holds up the key's processor.
        let now = scheduler.now
        let actions = state.withLock { $0.complete(batch, outcome: outcome, now: now, wallTime: Date()) }
        perform(actions)
        await deliver(actions.deliveries, of: batch)
    }

    /// The processor's call for batch `batchId` begins: starts its timeout. False if the batch
    /// was given up on meanwhile, and must not be processed.
    @inlinable func callStarted(_ batchId: UInt64) -> Bool {
        let now = scheduler.now
        switch state.withLock({ $0.callStarted(batchId, now: now) }) {
        case .proceed(let actions):
            perform(actions)
            return true
        case .skip:
            return false
        }
    }

    /// Hands results over, then tells the state machine they are out. `batch` is the batch
    /// whose call produced them, if any.
    @inlinable func deliver(_ deliveries: [StateMachine.Delivery], of batch: Batch<Payload>?) async {
        guard !deliveries.isEmpty else { return }
        report(deliveries, of: batch)
        for delivery in deliveries { await delivery.handler.deliver(delivery.result, logger: logger) }
        let now = scheduler.now
        perform(state.withLock { $0.deliveryFinished(now: now) })
    }

    @inlinable func report(_ deliveries: [StateMachine.Delivery], of batch: Batch<Payload>?) {
        let failed = deliveries.count { $0.result.status == .failed }
        if config.debug, let batch {
            logger.log(.debug, "key \"\(key)\": batch \(batch.id) completed, \(failed) of \(batch.jobs.count) jobs failed")
        }
        guard events.isActive else { return }
        var batchEvents: [BatchmanEvent] = []
        if let batch {
            batchEvents.append(.batchCompleted(key: key, batchId: batch.id, size: batch.jobs.count, failed: failed))
        }
        for delivery in deliveries {
            let result = delivery.result
            if let reason = result.errorReason {
                batchEvents.append(.jobFailed(key: result.key, id: result.id, batchId: result.batchId, reason: reason))
            } else if let batchId = result.batchId {
                batchEvents.append(.jobCompleted(key: result.key, id: result.id, batchId: batchId))
            }
        }
        events.emit(batchEvents)
    }
}
