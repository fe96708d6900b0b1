import FoundationEssentials
import Synchronization

/// One key's batcher: a ``BatcherStateMachine`` behind a lock, and the hands that carry out its
/// actions (arming deadlines, calling the processor, delivering results) outside the lock.
final class Batcher<Payload: Sendable, Output: Sendable, C: Clock>: FlushTarget, Sendable
where C.Duration == Duration {
    typealias StateMachine = BatcherStateMachine<Payload, Output>

    let key: String
    let config: BatcherConfig
    private let state: Mutex<StateMachine>
    private let processor: any BatchProcessor<Payload, Output>
    private let scheduler: FlushScheduler<C>
    private let events: EventBroadcaster
    private let logger: BatchmanLogger

    init(
        key: String, config: BatcherConfig, processor: any BatchProcessor<Payload, Output>,
        scheduler: FlushScheduler<C>, batchIds: BatchIdGenerator, events: EventBroadcaster,
        logger: BatchmanLogger
    ) {
        self.key = key
        self.config = config
        self.state = Mutex(StateMachine(key: key, config: config, batchIds: batchIds))
        self.processor = processor
        self.scheduler = scheduler
        self.events = events
        self.logger = logger
    }

    /// Accepts `job` or answers `handler` at once with the reason it was refused.
    /// - Returns: the job as accepted (`submitted`) or refused (`failed`).
    func submit(_ job: Job<Payload>, handler: StateMachine.Handler) -> Job<Payload> {
        switch state.withLock({ $0.submit(job, handler: handler) }) {
        case .accepted(let actions):
            if events.isActive { events.emit(.jobAccepted(key: job.key, id: job.id)) }
            perform(actions)
            return job
        case .rejected(let reason, let message):
            if config.debug { logger.log(.debug, "key \"\(key)\": rejected job \"\(job.id)\": \(message)") }
            events.emit(.jobRejected(key: job.key, id: job.id, reason: reason))
            handler.deliverNow(.failure(job, reason: reason, message: message, at: Date()), logger: logger)
            var refused = job
            refused.status = .failed
            return refused
        }
    }

    func job(_ identity: JobIdentity) -> Job<Payload>? {
        state.withLock { $0.job(identity) }
    }

    func deadlineReached(window: UInt64) {
        perform(state.withLock { $0.deadlineReached(window: window) })
    }

    /// Refuses new jobs and returns once every accepted job has its result.
    func drain() async {
        await withCheckedContinuation { waiter in
            perform(state.withLock { $0.drain(waiter) })
        }
    }

    /// Carries out everything in `actions` but its deliveries, which only ``run(_:)`` makes.
    private func perform(_ actions: StateMachine.Actions) {
        if let window = actions.scheduleWindow {
            scheduler.schedule(self, window: window, at: scheduler.now.advanced(by: config.frequency))
        }
        for batch in actions.flushed {
            if config.debug { logger.log(.debug, "key \"\(key)\": batch \(batch.id) flushed by \(batch.reason) with \(batch.jobs.count) jobs") }
            events.emit(.batchFlushed(key: key, batchId: batch.id, size: batch.jobs.count, reason: batch.reason))
        }
        for warning in actions.warnings { logger.log(.warning, warning) }
        for batch in actions.start {
            Task { await self.run(batch) }
        }
        for waiter in actions.drained { waiter.resume() }
    }

    private func run(_ batch: Batch<Payload>) async {
        let outcome: Result<[JobOutcome<Output>], any Error>
        do {
            outcome = .success(try await processor.process(batch))
        } catch {
            outcome = .failure(error)
        }
        // The next batch starts before these results are handed over, so a slow callback
        // never holds up the key's processor.
        let actions = state.withLock { $0.complete(batch, outcome: outcome, now: Date()) }
        perform(actions)
        guard !actions.deliveries.isEmpty else { return }
        report(batch, actions.deliveries)
        for delivery in actions.deliveries { await delivery.handler.deliver(delivery.result, logger: logger) }
        perform(state.withLock { $0.deliveryFinished() })
    }

    private func report(_ batch: Batch<Payload>, _ deliveries: [StateMachine.Delivery]) {
        let failed = deliveries.count { $0.result.status == .failed }
        if config.debug { logger.log(.debug, "key \"\(key)\": batch \(batch.id) completed, \(failed) of \(deliveries.count) jobs failed") }
        guard events.isActive else { return }
        var batchEvents = deliveries.map { delivery -> BatchmanEvent in
            let result = delivery.result
            if let reason = result.errorReason {
                return .jobFailed(key: result.key, id: result.id, batchId: batch.id, reason: reason)
            }
            return .jobCompleted(key: result.key, id: result.id, batchId: batch.id)
        }
        batchEvents.insert(.batchCompleted(key: key, batchId: batch.id, size: batch.jobs.count, failed: failed), at: 0)
        events.emit(batchEvents)
    }
}
