import FoundationEssentials

/// The decisions of one batcher: which jobs are pending, when a batch is cut, which batches run,
/// what each job's outcome is, and when a failed job is tried again. Pure: it returns
/// ``Actions`` for ``Batcher`` to carry out after releasing its lock, and it is given the time.
@usableFromInline struct BatcherStateMachine<Payload: Sendable, Output: Sendable, Instant: InstantProtocol> where Instant.Duration == Duration {
    @usableFromInline typealias Handler = ResultHandler<Payload, Output>
    /// Draws a retry's delay below a ceiling (full jitter); injected so tests can pin it.
    @usableFromInline typealias Jitter = @Sendable (_ ceiling: Duration) -> Duration
    /// Called once the batcher has drained: a closure rather than a continuation, so that a
    /// shutdown waits for any number of keys with one continuation and no task per key.
    @usableFromInline typealias DrainWaiter = @Sendable () -> Void

    @usableFromInline struct Delivery: Sendable {
        @inlinable init(handler: Handler, result: JobResult<Payload, Output>) {
            self.handler = handler
            self.result = result
        }

        @usableFromInline let handler: Handler
        @usableFromInline let result: JobResult<Payload, Output>
    }

    @usableFromInline struct Retry: Sendable {
        @inlinable init(job: Job<Payload>, delay: Duration) {
            self.job = job
            self.delay = delay
        }

        @usableFromInline let job: Job<Payload>
        @usableFromInline let delay: Duration
    }

    /// What the batcher must do once the lock is released.
    @usableFromInline struct Actions: Sendable {
        @inlinable init() {}

        /// Deadlines to set on the scheduler.
        @usableFromInline var schedule: [(BatcherDeadline, Instant)] = []
        /// Batches just cut (for events and debug logs).
        @usableFromInline var flushed: [Batch<Payload>] = []
        /// Batches to hand to the processor now.
        @usableFromInline var start: [Batch<Payload>] = []
        /// Results to hand to their submitters.
        @usableFromInline var deliveries: [Delivery] = []
        /// Jobs that will be tried again.
        @usableFromInline var retries: [Retry] = []
        /// Batches that overran their timeout.
        @usableFromInline var timedOut: [Batch<Payload>] = []
        /// Misbehaviour of the processor worth a warning.
        @usableFromInline var warnings: [String] = []
        /// Jobs no longer held: room for blocked producers.
        @usableFromInline var released = 0
        /// Shutdown callers to tell: the batcher has drained.
        @usableFromInline var drained: [DrainWaiter] = []

        /// Adds `other`'s actions after these (several submits under one lock).
        @inlinable mutating func append(_ other: Actions) {
            schedule += other.schedule
            flushed += other.flushed
            start += other.start
            deliveries += other.deliveries
            retries += other.retries
            timedOut += other.timedOut
            warnings += other.warnings
            released += other.released
            drained += other.drained
        }
    }

    @usableFromInline enum SubmitDecision {
        case accepted(Actions)
        case rejected(FailureReason, String)
        /// The key holds `maxPending` jobs already.
        case full
    }

    @usableFromInline struct Record {
        @inlinable init(job: Job<Payload>, handler: Handler, size: Int, window: UInt64) {
            self.job = job
            self.handler = handler
            self.size = size
            self.window = window
        }

        @usableFromInline var job: Job<Payload>
        @usableFromInline let handler: Handler
        /// Payload bytes, counted against `maxBatchBytes`.
        @usableFromInline let size: Int
        /// The window the job waits in (windows up to `startedThrough` are processing), or 0
        /// while it waits for a retry.
        @usableFromInline var window: UInt64
    }

    @usableFromInline struct Running {
        @inlinable init(batch: Batch<Payload>) {
            self.batch = batch
        }

        @usableFromInline let batch: Batch<Payload>
        /// The processor's call has begun (see ``callStarted(_:now:)``); its timeout counts from then.
        @usableFromInline var isCalling = false
        /// Its jobs were settled by a timeout: the late outcome is dropped.
        @usableFromInline var isSettled = false
    }

    /// Whether a batch handed to the processor may still be processed.
    @usableFromInline enum CallStart {
        /// Go ahead; carry out the actions (its timeout).
        case proceed(Actions)
        /// The batch was given up on before its call began (an abandoned drain): do not call.
        case skip
    }

    /// What became of one job of a batch.
    @usableFromInline enum Verdict {
        case completed(Output?, Date?)
        case failed(String, FailureReason, Date?)
        /// Transient: retried while attempts remain.
        case transient(String, FailureReason)
    }

    @usableFromInline let key: String
    @usableFromInline let config: BatcherConfig
    @usableFromInline let batchIds: BatchIdGenerator
    @usableFromInline let jitter: Jitter

    /// Every job held (waiting, processing, awaiting a retry), by identity: O(1) duplicate checks.
    @usableFromInline var records: [JobIdentity: Record] = [:]
    /// The jobs of the open window, in the order they joined it.
    @usableFromInline var open: [Job<Payload>] = []
    @usableFromInline var openBytes = 0
    /// The open window's number; it goes up each time a batch is cut.
    @usableFromInline var window: UInt64 = 1
    /// Batches start in window order, so every window up to this one is processing or done.
    @usableFromInline var startedThrough: UInt64 = 0
    @usableFromInline var sealed = FIFOQueue<(window: UInt64, batch: Batch<Payload>)>()
    @usableFromInline var running: [UInt64: Running] = [:]
    @usableFromInline var retrying: [UInt64: JobIdentity] = [:]
    @usableFromInline var nextRetryToken: UInt64 = 0
    @usableFromInline var lastStart: Instant?
    @usableFromInline var isPacingArmed = false
    /// Batches whose results are still being handed over.
    @usableFromInline var delivering = 0
    @usableFromInline var isDraining = false
    @usableFromInline var drainWaiters: [DrainWaiter] = []
    /// Counters of events; what is held now (pending, in flight) is read off the state.
    @usableFromInline var counters = BatcherStatistics()

    @inlinable var statistics: BatcherStatistics {
        var snapshot = counters
        snapshot.pending = records.count
        snapshot.inFlight = running.count
        return snapshot
    }

    @inlinable init(key: String, config: BatcherConfig, batchIds: BatchIdGenerator, jitter: @escaping Jitter) {
        self.key = key
        self.config = config
        self.batchIds = batchIds
        self.jitter = jitter
    }

    @inlinable var isIdle: Bool {
        open.isEmpty && sealed.isEmpty && running.isEmpty && retrying.isEmpty && delivering == 0
    }

    // MARK: - Events

    @inlinable mutating func submit(_ job: Job<Payload>, size: Int, handler: Handler, now: Instant) -> SubmitDecision {
        if isDraining {
            return .rejected(.shutdownBatch, "Batchman is shutting down; job \"\(job.id)\" was not accepted")
        }
        let identity = job.identity
        guard records[identity] == nil else {
            return .rejected(.duplicate, "Job \"\(job.id)\" is already pending for key \"\(job.key)\"")
        }
        if let maxBatchBytes = config.maxBatchBytes, size > maxBatchBytes {
            return .rejected(.error, "payload is \(size) bytes, larger than maxBatchBytes (\(maxBatchBytes)) for key \"\(key)\"")
        }
        if let maxPending = config.maxPending, records.count >= maxPending { return .full }
        records[identity] = Record(job: job, handler: handler, size: size, window: window)
        counters.accepted += 1
        var actions = Actions()
        enqueue(identity, now: now, into: &actions)
        return .accepted(actions)
    }

    /// The job with `identity` while it is held.
    @inlinable func job(_ identity: JobIdentity) -> Job<Payload>? {
        guard let record = records[identity] else { return nil }
        var job = record.job
        job.status = record.window != 0 && record.window <= startedThrough ? .processing : .submitted
        return job
    }

    @inlinable mutating func deadlineReached(_ deadline: BatcherDeadline, now: Instant, wallTime: Date) -> Actions {
        var actions = Actions()
        switch deadline {
        case .window(let deadlineWindow):
            if deadlineWindow == window, !open.isEmpty { seal(reason: .time, now: now, into: &actions) }
        case .retry(let token):
            if let identity = retrying.removeValue(forKey: token) { enqueue(identity, now: now, into: &actions) }
        case .timeout(let batchId):
            timeOut(batchId, now: now, wallTime: wallTime, into: &actions)
        case .pacing:
            isPacingArmed = false
            startReady(now: now, into: &actions)
        }
        finishStep(now: now, into: &actions)
        return actions
    }

    /// The processor's call for batch `batchId` begins now: its timeout starts counting. A
    /// processor that queues batches (the host's, waiting for a worker thread or for its plugin
    /// instance) reports this itself, so time spent queued is not held against the batch.
    @inlinable mutating func callStarted(_ batchId: UInt64, now: Instant) -> CallStart {
        guard let run = running[batchId], !run.isSettled, !run.isCalling else { return .skip }
        running[batchId]?.isCalling = true
        var actions = Actions()
        if let timeout = config.timeout { actions.schedule.append((.timeout(batchId), now.advanced(by: timeout))) }
        return .proceed(actions)
    }

    /// The processor call for `batch` returned with `outcome` (its outcomes, or what it threw).
    @inlinable mutating func complete(
        _ batch: Batch<Payload>, outcome: Result<[JobOutcome<Output>], any Error>, now: Instant, wallTime: Date
    ) -> Actions {
        var actions = Actions()
        guard let run = running.removeValue(forKey: batch.id) else { return actions }
        if !run.isSettled {
            let verdicts: [Verdict]
            switch outcome {
            case .success(let outcomes):
                verdicts = match(outcomes, to: batch, warnings: &actions.warnings)
            case .failure(let error):
                verdicts = Array(repeating: .transient("\(error)", .error), count: batch.jobs.count)
            }
            settle(batch, verdicts, now: now, wallTime: wallTime, into: &actions)
        }
        startReady(now: now, into: &actions)
        finishStep(now: now, into: &actions)
        return actions
    }

    /// The results of one batch have all been handed over.
    @inlinable mutating func deliveryFinished(now: Instant) -> Actions {
        delivering -= 1
        var actions = Actions()
        finishStep(now: now, into: &actions)
        return actions
    }

    /// Refuses new jobs, cuts every waiting job into batches at once (retries skip their
    /// backoff), and resumes `waiter` once everything is done.
    @inlinable mutating func drain(_ waiter: @escaping DrainWaiter, now: Instant) -> Actions {
        isDraining = true
        drainWaiters.append(waiter)
        var actions = Actions()
        for token in retrying.keys.sorted() {
            if let identity = retrying.removeValue(forKey: token) { enqueue(identity, now: now, into: &actions) }
        }
        finishStep(now: now, into: &actions)
        return actions
    }

    /// Gives up on the drain: every job still held fails with `shutdown_batch`, and running
    /// batches' late outcomes are dropped. A job that is in a running batch keeps that batch's
    /// id and counts that attempt; the others report the attempts they finished.
    @inlinable mutating func abandon(reason message: String, now: Instant, wallTime: Date) -> Actions {
        isDraining = true
        var actions = Actions()
        for run in running.values.sorted(by: { $0.batch.id < $1.batch.id }) where !run.isSettled {
            for job in run.batch.jobs {
                guard let record = records.removeValue(forKey: job.identity) else { continue }
                deliver(record, .failure(record.job, reason: .shutdownBatch, message: message, batchId: run.batch.id,
                                         attempts: record.job.attempt, at: wallTime), into: &actions)
            }
        }
        for record in records.values {
            deliver(record, .failure(record.job, reason: .shutdownBatch, message: message,
                                     attempts: record.job.attempt - 1, at: wallTime), into: &actions)
        }
        records.removeAll()
        open = []
        openBytes = 0
        sealed = FIFOQueue()
        retrying.removeAll()
        window += 1
        // Forgetting the running batches drops their late outcomes: `complete` finds nothing.
        running.removeAll()
        if !actions.deliveries.isEmpty { delivering += 1 }
        finishStep(now: now, into: &actions)
        actions.drained += drainWaiters
        drainWaiters = []
        return actions
    }

    // MARK: - Internals

    /// Puts a held job into the open window, cutting batches as size and bytes demand.
    @inlinable mutating func enqueue(_ identity: JobIdentity, now: Instant, into actions: inout Actions) {
        guard let record = records[identity] else { return }
        if let maxBatchBytes = config.maxBatchBytes, !open.isEmpty, openBytes + record.size > maxBatchBytes {
            seal(reason: .bytes, now: now, into: &actions)
        }
        records[identity]?.window = window
        open.append(record.job)
        openBytes += record.size
        if open.count >= config.maxBatchSize {
            seal(reason: .size, now: now, into: &actions)
        } else if open.count == 1 {
            actions.schedule.append((.window(window), now.advanced(by: config.frequency)))
        }
    }

    @inlinable mutating func seal(reason: FlushReason, now: Instant, into actions: inout Actions) {
        let batch = Batch(id: batchIds.next(), key: key, jobs: open, reason: reason)
        sealed.append((window, batch))
        actions.flushed.append(batch)
        open = []
        openBytes = 0
        window += 1
        startReady(now: now, into: &actions)
    }

    @inlinable mutating func startReady(now: Instant, into actions: inout Actions) {
        while running.count < config.maxInFlight, let next = sealed.first {
            if !isDraining, let interval = config.minBatchInterval, let lastStart, now < lastStart.advanced(by: interval) {
                if !isPacingArmed {
                    isPacingArmed = true
                    actions.schedule.append((.pacing, lastStart.advanced(by: interval)))
                }
                return
            }
            _ = sealed.popFirst()
            running[next.batch.id] = Running(batch: next.batch)
            startedThrough = next.window
            lastStart = now
            counters.batches += 1
            counters.batchedJobs += next.batch.jobs.count
            actions.start.append(next.batch)
        }
    }

    @inlinable mutating func timeOut(_ batchId: UInt64, now: Instant, wallTime: Date, into actions: inout Actions) {
        guard let run = running[batchId], !run.isSettled else { return }
        // The call is still running: its jobs are settled now, but the key's slot stays taken
        // until it returns, so the instance never gets two calls at once.
        running[batchId]?.isSettled = true
        actions.timedOut.append(run.batch)
        let message = "batch \(batchId) timed out after \(config.timeout.map { "\($0)" } ?? "?")"
        settle(run.batch, Array(repeating: .transient(message, .timeout), count: run.batch.jobs.count),
               now: now, wallTime: wallTime, into: &actions)
    }

    /// Applies each job's verdict: complete it, fail it, or schedule its retry.
    @inlinable mutating func settle(
        _ batch: Batch<Payload>, _ verdicts: [Verdict], now: Instant, wallTime: Date, into actions: inout Actions
    ) {
        let deliveriesBefore = actions.deliveries.count
        for (job, verdict) in zip(batch.jobs, verdicts) {
            guard let record = records[job.identity] else { continue }
            let attempt = record.job.attempt
            switch verdict {
            case .completed(let output, let completedAt):
                counters.completed += 1
                finish(record, JobResult(job: record.job, status: .completed, result: output, errorReason: nil, errorMessage: nil,
                                         batchId: batch.id, attempts: attempt, completedAt: completedAt ?? wallTime), into: &actions)
            case .failed(let message, let reason, let completedAt):
                finish(record, .failure(record.job, reason: reason, message: message, batchId: batch.id, attempts: attempt,
                                        at: completedAt ?? wallTime), into: &actions)
            case .transient where attempt < config.maxAttempts:
                retry(record, now: now, into: &actions)
            case .transient(let message, let reason):
                // A crash keeps its name: it says more than "attempts ran out".
                let finalReason = config.maxAttempts > 1 && reason != .crashed ? FailureReason.maxRetry : reason
                finish(record, .failure(record.job, reason: finalReason, message: message, batchId: batch.id,
                                        attempts: attempt, at: wallTime), into: &actions)
            }
        }
        if actions.deliveries.count > deliveriesBefore { delivering += 1 }
    }

    @inlinable mutating func retry(_ record: Record, now: Instant, into actions: inout Actions) {
        let identity = record.job.identity
        records[identity]?.job.attempt += 1
        records[identity]?.window = 0
        counters.retried += 1
        let delay = isDraining ? .zero : jitter(config.backoffCeiling(beforeRetry: record.job.attempt))
        actions.retries.append(Retry(job: records[identity]!.job, delay: delay))
        if delay <= .zero {
            enqueue(identity, now: now, into: &actions)
        } else {
            nextRetryToken += 1
            retrying[nextRetryToken] = identity
            actions.schedule.append((.retry(nextRetryToken), now.advanced(by: delay)))
        }
    }

    @inlinable mutating func finish(_ record: Record, _ result: JobResult<Payload, Output>, into actions: inout Actions) {
        records.removeValue(forKey: record.job.identity)
        deliver(record, result, into: &actions)
    }

    @inlinable mutating func deliver(_ record: Record, _ result: JobResult<Payload, Output>, into actions: inout Actions) {
        if let reason = result.errorReason { counters.failed[reason, default: 0] += 1 }
        actions.released += 1
        actions.deliveries.append(Delivery(handler: record.handler, result: result))
    }

    /// Every entry point ends here: while draining nothing waits for its window, and an idle
    /// batcher resumes its drain waiters.
    @inlinable mutating func finishStep(now: Instant, into actions: inout Actions) {
        if isDraining, !open.isEmpty { seal(reason: .shutdown, now: now, into: &actions) }
        guard isDraining, isIdle, !drainWaiters.isEmpty else { return }
        actions.drained += drainWaiters
        drainWaiters = []
    }

    /// Lines `outcomes` up with `batch.jobs`. Processors usually answer in order, so that is
    /// checked first and costs no hashing; otherwise outcomes are matched by identity.
    @inlinable func match(_ outcomes: [JobOutcome<Output>], to batch: Batch<Payload>, warnings: inout [String]) -> [Verdict] {
        let jobs = batch.jobs
        if outcomes.count == jobs.count, zip(outcomes, jobs).allSatisfy({ $0.id.hasSameBytes(as: $1.id) && $0.key.hasSameBytes(as: $1.key) }) {
            return outcomes.map(Self.verdict)
        }
        var indexByIdentity: [JobIdentity: Int] = [:]
        indexByIdentity.reserveCapacity(jobs.count)
        for (index, job) in jobs.enumerated() { indexByIdentity[job.identity] = index }
        var verdicts = [Verdict?](repeating: nil, count: jobs.count)
        for outcome in outcomes {
            guard let index = indexByIdentity[outcome.identity] else {
                warnings.append("batch \(batch.id) (key \"\(key)\"): ignoring a result for job \"\(outcome.id)\" (key \"\(outcome.key)\"), which is not in the batch")
                continue
            }
            guard verdicts[index] == nil else {
                warnings.append("batch \(batch.id) (key \"\(key)\"): ignoring a second result for job \"\(outcome.id)\"")
                continue
            }
            verdicts[index] = Self.verdict(outcome)
        }
        return verdicts.map { $0 ?? .transient("No result returned for job", .error) }
    }

    @inlinable static func verdict(_ outcome: JobOutcome<Output>) -> Verdict {
        guard outcome.status == .failed else { return .completed(outcome.result, outcome.completedAt) }
        let message = outcome.errorMessage ?? "Processor failed the job"
        let reason = outcome.failureReason ?? .error
        return outcome.isRetryable ? .transient(message, reason) : .failed(message, reason, outcome.completedAt)
    }
}
