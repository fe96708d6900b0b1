import FoundationEssentials
import Synchronization

/// One key's batcher: the thin generic layer around a ``BatcherEngine``.
///
/// The engine decides on job slots; this layer keeps what it must not see (each slot's job and
/// result handler), builds batches from slots, matches a processor's outcomes to jobs, and turns
/// settlements into results. One lock guards both, taken once per submit (once per run of jobs
/// with ``submit(contentsOf:sizes:handler:)``) and once per batch on the way back; batches are
/// matched before the lock and results are built and handed over after it.
@usableFromInline final class Batcher<Payload: Sendable, Output: Sendable, C: Clock>: Sendable
where C.Duration == Duration {
    @usableFromInline typealias Handler = ResultHandler<Payload, Output>
    @usableFromInline typealias Engine = BatcherEngine
    @usableFromInline typealias Outcomes = Result<[JobOutcome<Output>], any Error>

    @usableFromInline struct Entry: Sendable {
        @usableFromInline var job: Job<Payload>
        @usableFromInline let handler: Handler

        @inlinable init(job: Job<Payload>, handler: Handler) {
            self.job = job
            self.handler = handler
        }
    }

    @usableFromInline struct Delivery: Sendable {
        @usableFromInline let entry: Entry
        @usableFromInline let settlement: Engine.Settlement

        @inlinable init(entry: Entry, settlement: Engine.Settlement) {
            self.entry = entry
            self.settlement = settlement
        }
    }

    /// What the engine's effects need of the entries, gathered under the lock.
    @usableFromInline struct Work: Sendable {
        @usableFromInline var effects: Engine.Effects
        @usableFromInline var batches: [Batch<Payload>] = []
        @usableFromInline var deliveries: [Delivery] = []
        @usableFromInline var retried: [(job: Job<Payload>, delay: Duration)] = []
        /// The sinks `deliveries` report to, held until they are handed over.
        @usableFromInline var sinks: [any ResultSink<Payload, Output>] = []
        @usableFromInline var drainWaiters: [@Sendable () -> Void] = []
        /// What the processor asked to be told of calls that overran their timeout.
        @usableFromInline var timeoutHandlers: [@Sendable () -> Void] = []

        @inlinable init(effects: Engine.Effects) {
            self.effects = effects
        }
    }

    /// The engine, and by slot what it must not see.
    @usableFromInline struct State: Sendable {
        @usableFromInline var engine: Engine
        @usableFromInline var entries: [Entry?] = []
        @usableFromInline var drainWaiters: [@Sendable () -> Void] = []
        @usableFromInline var sinkHolds = SinkHolds<Payload, Output>()
        /// By batch: what to run if its call overruns its timeout (``Batch/beginCall(onTimeout:)``).
        @usableFromInline var timeoutHandlers: [UInt64: @Sendable () -> Void] = [:]

        @inlinable init(engine: Engine) {
            self.engine = engine
        }

        @inlinable mutating func store(_ entry: Entry, at slot: Int) {
            if case .sink(let reference) = entry.handler { sinkHolds.hold(reference.sink) }
            if slot == entries.count {
                entries.append(entry)
            } else {
                entries[slot] = entry
            }
        }

        /// Carries `effects` over to the entries: retried jobs count their attempt, started
        /// batches get their jobs, settled jobs leave (their slots are free once the lock is
        /// released).
        @inlinable mutating func collect(_ effects: Engine.Effects, key: String, reportsRetries: Bool) -> Work {
            var work = Work(effects: effects)
            for batch in effects.timedOut {
                if let handler = timeoutHandlers.removeValue(forKey: batch.id) { work.timeoutHandlers.append(handler) }
            }
            for retried in effects.retried {
                entries[retried.slot]!.job.attempt = retried.attempt
                if reportsRetries { work.retried.append((entries[retried.slot]!.job, retried.delay)) }
            }
            for started in effects.started {
                let jobs = started.slots.map { entries[$0]!.job }
                work.batches.append(Batch(id: started.id, key: key, jobs: jobs, reason: started.reason))
            }
            work.deliveries.reserveCapacity(effects.settled.count)
            for settlement in effects.settled {
                let entry = entries[settlement.slot].take()!  // moved out, not copied
                if case .sink(let reference) = entry.handler {
                    let sink = sinkHolds.release(reference.sink)
                    if work.sinks.last.map({ $0 !== sink }) ?? true { work.sinks.append(sink) }
                }
                work.deliveries.append(Delivery(entry: entry, settlement: settlement))
            }
            if effects.drained {
                work.drainWaiters = drainWaiters
                drainWaiters = []
            }
            if effects.releasedStorage { entries = [] }
            return work
        }
    }

    @usableFromInline let key: String
    @usableFromInline let policy: KeyPolicy
    @usableFromInline let state: Mutex<State>
    @usableFromInline let processor: any BatchProcessor<Payload, Output>
    @usableFromInline let clock: C
    @usableFromInline let origin: C.Instant
    @usableFromInline let scheduler: FlushScheduler
    @usableFromInline let shared: BatchmanShared

    @inlinable init(
        key: String, policy: KeyPolicy, processor: any BatchProcessor<Payload, Output>, clock: C, origin: C.Instant,
        scheduler: FlushScheduler, shared: BatchmanShared
    ) {
        self.key = key
        self.policy = policy
        self.processor = processor
        self.state = Mutex(State(engine: Engine(key: key, policy: policy, reportsCallStart: processor.queuesItsBatches)))
        self.clock = clock
        self.origin = origin
        self.scheduler = scheduler
        self.shared = shared
    }

    @inlinable var config: BatcherConfig { policy.config }
    @inlinable var events: EventBroadcaster { shared.events }
    @inlinable var logger: BatchmanLogger { shared.logger }
    /// The time since the clock's origin: what the engine and the scheduler count in.
    @inlinable var now: Duration { origin.duration(to: clock.now) }

    @usableFromInline enum Submission {
        case accepted(Job<Payload>)
        /// Refused; the handler already has its failed result.
        case refused(Job<Payload>)
        /// The key is at `maxPending`.
        case full
    }

    /// Accepts `job`, answers `handler` at once with the reason it was refused, or says the key is full.
    @inlinable func submit(_ job: Job<Payload>, size: Int, handler: Handler) -> Submission {
        let reportsRetries = events.isActive
        let (action, work) = state.withLock { state -> (Engine.SubmitAction, Work?) in
            let action = state.engine.submit(job.identity, size: size, now: { now })
            guard case .accepted(let slot, let effects) = action else { return (action, nil) }
            state.store(Entry(job: job, handler: handler), at: slot)
            guard let effects, !effects.isEmpty else { return (.accepted(slot: slot, nil), nil) }
            return (.accepted(slot: slot, nil), state.collect(effects, key: key, reportsRetries: reportsRetries))
        }
        switch action {
        case .accepted:
            if events.isActive { events.emit(.jobAccepted(key: job.key, id: job.id)) }
            if let work { perform(work) }
            return .accepted(job)
        case .refused(let refusal):
            let (reason, message) = explain(refusal, of: job)
            return .refused(shared.refuse(job, reason: reason, message: message, handler: handler, debug: config.debug))
        case .full:
            return .full
        }
    }

    /// Submits the jobs of `jobs` at `indices` under one lock: accepts each, or refuses it (its
    /// handler is answered), until the key is full.
    /// - Returns: how many were taken (accepted or refused), fewer than all when the key is at
    ///   `maxPending`, and how many of those were refused.
    @inlinable func submit(
        _ jobs: [Job<Payload>], at indices: ArraySlice<Int>, sizes: ((Payload) -> Int)?, handler: Handler
    ) -> (taken: Int, refused: Int) {
        let reportsAccepted = events.isActive
        var refused: [(index: Int, Engine.Refusal)] = []
        let (taken, work) = state.withLock { state -> (Int, Work?) in
            var effects = Engine.Effects()
            var taken = 0
            for index in indices {
                // Fields are read through the array: see `match`.
                switch state.engine.submit(jobs[index].identity, size: sizes?(jobs[index].payload) ?? 0, now: { now }) {
                case .accepted(let slot, let jobEffects):
                    state.store(Entry(job: jobs[index], handler: handler), at: slot)
                    if let jobEffects, !jobEffects.isEmpty { effects.append(jobEffects) }
                case .refused(let refusal):
                    refused.append((index, refusal))
                case .full:
                    return (taken, effects.isEmpty ? nil : state.collect(effects, key: key, reportsRetries: reportsAccepted))
                }
                taken += 1
            }
            return (taken, effects.isEmpty ? nil : state.collect(effects, key: key, reportsRetries: reportsAccepted))
        }
        if reportsAccepted {
            let refusedIndices = Set(refused.map(\.index))
            events.emit(indices.prefix(taken).filter { !refusedIndices.contains($0) }.map { .jobAccepted(key: jobs[$0].key, id: jobs[$0].id) })
        }
        if let work { perform(work) }
        for (index, refusal) in refused {
            let (reason, message) = explain(refusal, of: jobs[index])
            _ = shared.refuse(jobs[index], reason: reason, message: message, handler: handler, debug: config.debug)
        }
        return (taken, refused.count)
    }

    @inlinable func explain(_ refusal: Engine.Refusal, of job: Job<Payload>) -> (FailureReason, String) {
        switch refusal {
        case .shuttingDown:
            (.shutdownBatch, "Batchman is shutting down; job \"\(job.id)\" was not accepted")
        case .duplicate:
            (.duplicate, "Job \"\(job.id)\" is already pending for key \"\(job.key)\"")
        case .tooLarge(let size, let limit):
            (.error, "payload is \(size) bytes, larger than maxBatchBytes (\(limit)) for key \"\(key)\"")
        }
    }

    @inlinable func job(_ identity: JobIdentity) -> Job<Payload>? {
        state.withLock { state -> Job<Payload>? in
            guard let (slot, status, attempt) = state.engine.lookUp(identity), var job = state.entries[slot]?.job else { return nil }
            job.status = status
            job.attempt = attempt
            return job
        }
    }

    @inlinable var statistics: BatcherStatistics {
        state.withLock { $0.engine.statistics }
    }

    @inlinable func deadlineReached(_ deadline: BatcherDeadline) {
        let now = now
        let reportsRetries = events.isActive
        let work = state.withLock { state in
            state.collect(state.engine.deadlineReached(deadline, now: now), key: key, reportsRetries: reportsRetries)
        }
        perform(work)
    }

    /// Starts none of the key's batches for `duration` (see ``BatcherEngine/pause(until:now:)``).
    @inlinable func pause(for duration: Duration) {
        let now = now
        let reportsRetries = events.isActive
        let work = state.withLock { state in
            state.collect(state.engine.pause(until: now + max(.zero, duration), now: now), key: key, reportsRetries: reportsRetries)
        }
        perform(work)
    }

    /// Refuses new jobs and calls `onDrained` once every accepted job has its result.
    @inlinable func drain(onDrained: @escaping @Sendable () -> Void) {
        let now = now
        let reportsRetries = events.isActive
        let work = state.withLock { state in
            state.drainWaiters.append(onDrained)
            return state.collect(state.engine.drain(now: now), key: key, reportsRetries: reportsRetries)
        }
        perform(work)
    }

    /// Fails every job still held with `shutdown_batch` and `message`.
    @inlinable func abandon(_ message: String) {
        let now = now
        let work = state.withLock { state in
            state.timeoutHandlers = [:]  // the running calls' outcomes are dropped; their timeouts no longer matter
            return state.collect(state.engine.abandon(reason: message, now: now), key: key, reportsRetries: false)
        }
        perform(work)
    }

    /// Carries out `work` outside the lock: deadlines, events and logs, room for producers,
    /// batches to start, results to hand over (`outcomes`: the processor's, by position, when
    /// they come from a call), and drain waiters to resume.
    @inlinable func perform(_ work: Work, outcomes: MatchedOutcomes = .none, of batch: Batch<Payload>? = nil) {
        let effects = work.effects
        // Scheduled through a closure formed here, so that the deadline runs specialised code (see FlushCallback).
        effects.announce(for: effects.deadlines.isEmpty ? nil : FlushCallback { [self] in deadlineReached($0) }, key: key, config: config,
                         scheduler: scheduler, shared: shared)
        for handler in work.timeoutHandlers { handler() }
        if !work.retried.isEmpty {
            events.emit(work.retried.map { .jobRetried(key: $0.job.key, id: $0.job.id, attempt: $0.job.attempt, delay: $0.delay) })
        }
        for batch in work.batches { start(batch) }
        if let token = effects.delivery { deliver(work.deliveries, keeping: work.sinks, token: token, outcomes: outcomes, of: batch) }
        for waiter in work.drainWaiters { waiter() }
    }

    /// Hands `batch` to the processor: a queueing one directly (it calls back when done), any
    /// other in a task of its own.
    @inlinable func start(_ batch: Batch<Payload>) {
        // Asked per batch rather than kept: an idle key should not carry a second existential.
        var queued = batch
        queued.callStarter = { [self, id = batch.id] onTimeout in callStarted(id, onTimeout: onTimeout) }
        if !processor.enqueueIfQueueing(queued, completion: { [self, batch] outcome in finish(batch, outcome) }) {
            Task { [self] in
                let outcome: Outcomes
                do {
                    outcome = .success(try await processor.process(batch))
                } catch {
                    outcome = .failure(error)
                }
                finish(batch, outcome)
            }
        }
    }

    /// The processor's call for batch `batchId` begins: starts its timeout, which runs
    /// `onTimeout` if it expires first. False if the batch was given up on meanwhile, and must
    /// not be processed.
    @inlinable func callStarted(_ batchId: UInt64, onTimeout: (@Sendable () -> Void)?) -> Bool {
        let now = now
        let start = state.withLock { state in
            let start = state.engine.callStarted(batchId, now: now)
            if case .proceed = start, let onTimeout, config.timeout != nil { state.timeoutHandlers[batchId] = onTimeout }
            return start
        }
        switch start {
        case .proceed(let effects):
            perform(Work(effects: effects))
            return true
        case .skip:
            return false
        }
    }

    /// The processor's outcomes, by the position of the job each decided.
    @usableFromInline enum MatchedOutcomes {
        /// One per job, in the batch's order: what almost every processor returns.
        case inOrder([JobOutcome<Output>])
        case byPosition([JobOutcome<Output>?])
        /// The call threw, or Batchman decided (a timeout, a shutdown).
        case none

        @inlinable subscript(position: Int) -> JobOutcome<Output>? {
            switch self {
            case .inOrder(let outcomes): outcomes[position]
            case .byPosition(let outcomes): outcomes[position]
            case .none: nil
            }
        }
    }

    /// The processor's call for `batch` returned: settles its jobs (the next batch starts
    /// before their results are handed over, so a slow callback never holds up the processor).
    @inlinable func finish(_ batch: Batch<Payload>, _ outcome: Outcomes) {
        let verdicts: Engine.Verdicts
        let matched: MatchedOutcomes
        switch outcome {
        case .success(let outcomes):
            var warnings: [String] = []
            (verdicts, matched) = match(outcomes, to: batch, warnings: &warnings)
            for warning in warnings { logger.log(.warning, warning) }
        case .failure(let error):
            verdicts = .each([Engine.Verdict](repeating: .transient("\(error)", .error), count: batch.jobs.count))
            matched = .none
        }
        let now = now
        let reportsRetries = events.isActive
        let work = state.withLock { state in
            if !state.timeoutHandlers.isEmpty { state.timeoutHandlers[batch.id] = nil }
            return state.collect(state.engine.complete(batch.id, verdicts: verdicts, now: now), key: key, reportsRetries: reportsRetries)
        }
        perform(work, outcomes: matched, of: batch)
    }

    /// Builds and hands over the results of `deliveries`, then tells the engine they are out.
    /// Callbacks run on this thread, each result built as it is handed over; async callbacks
    /// run in a task, which reports when they are done.
    /// `sinks` are the sinks the deliveries report to, held strongly until they are handed over.
    @inlinable func deliver(
        _ deliveries: [Delivery], keeping sinks: [any ResultSink<Payload, Output>], token: UInt64, outcomes: MatchedOutcomes,
        of batch: Batch<Payload>?
    ) {
        let wallTime = Date()
        let hasAsyncCallbacks = deliveries.contains { if case .async = $0.entry.handler { true } else { false } }
        guard hasAsyncCallbacks || events.isActive || config.debug else {
            Handler.deliverNow(deliveries.lazy.map { ($0.entry.handler, self.result(of: $0, outcomes: outcomes, wallTime: wallTime)) },
                               logger: logger)
            deliveryFinished(token)
            return
        }
        let results = deliveries.map { result(of: $0, outcomes: outcomes, wallTime: wallTime) }
        report(results, of: batch)
        guard hasAsyncCallbacks else {
            Handler.deliverNow(zip(deliveries.lazy.map(\.entry.handler), results), logger: logger)
            deliveryFinished(token)
            return
        }
        Task { [self] in
            for (delivery, result) in zip(deliveries, results) { await delivery.entry.handler.deliver(result, logger: logger) }
            withExtendedLifetime(sinks) {}
            deliveryFinished(token)
        }
    }

    @inlinable func result(of delivery: Delivery, outcomes: MatchedOutcomes, wallTime: Date) -> JobResult<Payload, Output> {
        let settlement = delivery.settlement
        let decided = settlement.position.flatMap { outcomes[$0] }
        let completedAt = decided?.completedAt ?? wallTime
        switch settlement.outcome {
        case .completed:
            return JobResult(job: delivery.entry.job, status: .completed, result: decided?.result, errorReason: nil, errorMessage: nil,
                             batchId: settlement.batchId, attempts: settlement.attempts, completedAt: completedAt)
        case .failed(let reason, let message):
            return .failure(delivery.entry.job, reason: reason, message: message, batchId: settlement.batchId,
                            attempts: settlement.attempts, at: completedAt)
        }
    }

    @inlinable func deliveryFinished(_ token: UInt64) {
        let now = now
        let reportsRetries = events.isActive
        let work = state.withLock { state in
            state.collect(state.engine.deliveryFinished(token, now: now), key: key, reportsRetries: reportsRetries)
        }
        perform(work)
    }

    @inlinable func report(_ results: [JobResult<Payload, Output>], of batch: Batch<Payload>?) {
        if config.debug, let batch {
            let failed = results.count { $0.status == .failed }
            logger.log(.debug, "key \"\(key)\": batch \(batch.id) completed, \(failed) of \(batch.jobs.count) jobs failed")
        }
        guard events.isActive else { return }
        var batchEvents: [BatchmanEvent] = []
        if let batch {
            let failed = results.count { $0.status == .failed }
            batchEvents.append(.batchCompleted(key: key, batchId: batch.id, size: batch.jobs.count, failed: failed))
        }
        for result in results {
            if let reason = result.errorReason {
                batchEvents.append(.jobFailed(key: result.key, id: result.id, batchId: result.batchId, reason: reason))
            } else if let batchId = result.batchId {
                batchEvents.append(.jobCompleted(key: result.key, id: result.id, batchId: batchId))
            }
        }
        events.emit(batchEvents)
    }

    /// Lines `outcomes` up with `batch.jobs`: one verdict per job, and the outcome that decided
    /// it. Processors usually answer in order, so that is checked first and costs no hashing;
    /// otherwise outcomes are matched by identity.
    @inlinable func match(
        _ outcomes: [JobOutcome<Output>], to batch: Batch<Payload>, warnings: inout [String]
    ) -> (Engine.Verdicts, MatchedOutcomes) {
        let jobs = batch.jobs
        // Fields are compared through the arrays, never by binding whole elements: a whole job or
        // outcome is copied through its generic value witness, which showed in profiles.
        var inOrder = outcomes.count == jobs.count
        var allCompleted = true
        // A processor that answers by position (the host's plugins) is taken at its word: no
        // ids are compared again.
        let byPosition = inOrder && processor.answersInOrder
        for index in outcomes.indices where inOrder {
            inOrder = byPosition
                || (outcomes[index].id.hasSameBytes(as: jobs[index].id) && outcomes[index].key.hasSameBytes(as: jobs[index].key))
            allCompleted = allCompleted && outcomes[index].status != .failed
        }
        if inOrder {
            return (allCompleted ? .allCompleted : .each(outcomes.map(Self.verdict)), .inOrder(outcomes))
        }
        // By key and id. Jobs of different scopes may share both in one batch: an outcome goes
        // to the first of them still undecided (`sameAfter` chains them in batch order).
        var firstByIdentity: [JobIdentity: Int] = [:]
        firstByIdentity.reserveCapacity(jobs.count)
        var sameAfter = [Int](repeating: -1, count: jobs.count)
        var lastByIdentity: [JobIdentity: Int] = [:]
        for index in jobs.indices {
            let identity = JobIdentity(key: jobs[index].key, id: jobs[index].id)
            if let last = lastByIdentity[identity] { sameAfter[last] = index } else { firstByIdentity[identity] = index }
            lastByIdentity[identity] = index
        }
        var decided = [JobOutcome<Output>?](repeating: nil, count: jobs.count)
        for outcome in outcomes {
            guard var index = firstByIdentity[outcome.identity] else {
                warnings.append("batch \(batch.id) (key \"\(key)\"): ignoring a result for job \"\(outcome.id)\" (key \"\(outcome.key)\"), which is not in the batch")
                continue
            }
            while decided[index] != nil, sameAfter[index] >= 0 { index = sameAfter[index] }
            guard decided[index] == nil else {
                warnings.append("batch \(batch.id) (key \"\(key)\"): ignoring a second result for job \"\(outcome.id)\"")
                continue
            }
            decided[index] = outcome
        }
        let verdicts = decided.map { $0.map(Self.verdict) ?? .transient("No result returned for job", .error) }
        return (.each(verdicts), .byPosition(decided))
    }

    @inlinable static func verdict(_ outcome: JobOutcome<Output>) -> Engine.Verdict {
        guard outcome.status == .failed else { return .completed }
        let message = outcome.errorMessage ?? "Processor failed the job"
        let reason = outcome.failureReason ?? .error
        guard outcome.isRetryable else { return .failed(message, reason) }
        return .transient(message, reason, retryAfter: max(.zero, outcome.retryAfter ?? .zero))
    }
}
