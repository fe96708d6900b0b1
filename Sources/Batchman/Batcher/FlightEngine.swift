/// The settling half of a key's batcher: batches from the moment they are cut until their
/// results are out. Which batches wait and which run, what each job's verdict does, when a
/// failed job is tried again, and when a drain is over.
///
/// Its partner, the ``IntakeEngine``, cuts batches from the jobs producers submit and hands
/// them over with ``accept(_:now:)``; jobs to try again go back to it to rejoin a window. This
/// engine never sees a job, only batch ids, counts and positions within a batch: the generic
/// ``Batcher`` keeps each batch's jobs and handlers. Pure: each event returns what to do, as
/// ``Effects``, for the batcher to carry out after releasing its lock.
@usableFromInline struct FlightEngine: Sendable {
    /// Draws a retry's delay below a ceiling (full jitter); injected so tests can pin it.
    @usableFromInline typealias Jitter = @Sendable (_ ceiling: Duration) -> Duration

    /// The key's lifecycle, as far as batches go.
    @usableFromInline enum Phase: Equatable, Sendable {
        /// Running batches as they come.
        case running
        /// Shutdown began: retries keep their backoff, and the drain waiters are told once
        /// nothing is held any more.
        case draining
        /// Shut down and idle: every job held had its result handed over.
        case drained
    }

    /// Where a batch handed to the processor is in its call.
    enum CallPhase: Equatable, Sendable {
        /// Waiting for the processor (a queueing processor reports when its call begins).
        case handedOver
        /// The call runs; its timeout, if any, counts from the start.
        case calling
        /// It overran its timeout: its jobs were settled then, and its late outcome is dropped.
        /// The batch still holds its place until the call returns, so that one processor
        /// instance never has more calls than `maxInFlight`.
        case timedOut
    }

    @usableFromInline enum CallStart: Equatable, Sendable {
        /// Go ahead; carry out the effects (its timeout).
        case proceed(Effects)
        /// The batch was given up on before its call began (an abandoned drain): do not call.
        case skip
    }

    /// What became of one job of a batch, as the processor's outcome says.
    @usableFromInline enum Verdict: Equatable, Sendable {
        case completed
        case failed(String, FailureReason)
        /// Transient: retried while attempts remain, not sooner than `retryAfter` from now (the
        /// processor's floor under the backoff; zero when it named none).
        case transient(String, FailureReason, retryAfter: Duration = .zero)
    }

    /// The verdicts on a batch's jobs, in the batch's order.
    @usableFromInline enum Verdicts: Equatable, Sendable {
        /// Every job completed: what almost every batch gets, with no array to build.
        case allCompleted
        case each([Verdict])

        @usableFromInline var count: Int? {
            guard case .each(let verdicts) = self else { return nil }
            return verdicts.count
        }
    }

    /// A batch waiting its turn.
    struct Waiting: Equatable, Sendable {
        let id: UInt64
        let reason: FlushReason
        let count: Int
    }

    /// A batch handed to the processor.
    struct Running: Sendable {
        let count: Int
        var call: CallPhase
    }

    let policy: KeyPolicy
    var config: BatcherConfig { policy.config }
    /// The processor says itself when a call begins (a queueing processor); otherwise the call
    /// begins when the batch starts.
    let reportsCallStart: Bool

    @usableFromInline private(set) var phase = Phase.running
    private var waiting = FIFOQueue<Waiting>()
    private var running: [UInt64: Running] = [:]
    /// Retries waiting out their backoff, by token, with how many jobs each holds.
    private var retrying: [UInt64: Int] = [:]
    private var nextRetryToken: UInt64 = 0
    /// `strict` ordering: the token of the retried jobs that hold the key's later batches back;
    /// 0 for none (tokens start at 1), not an optional's 16 bytes.
    private var heldRetryToken: UInt64 = 0
    private var heldRetries: UInt64? {
        get { heldRetryToken == 0 ? nil : heldRetryToken }
        set { heldRetryToken = newValue ?? 0 }
    }
    /// Retried jobs sent back to the intake and not yet in a batch again: a drain waits for them.
    private var rejoining = 0
    /// Results settled and not yet handed over, by token, in the order they settled: the first
    /// is being handed over, the others wait their turn. A key's results go out one batch at a
    /// time and in order (with `maxInFlight` 1, batch order), though the next batch starts
    /// before they do: a slow callback does not hold the processor up, and a batch that settles
    /// while earlier results are still going out waits for them. A drain waits for all.
    private var deliveries = FIFOQueue<UInt64>()
    private var nextDeliveryToken: UInt64 = 0
    @PackedTime private var lastStart: Duration?
    /// When the `minBatchInterval` deadline set is due, while one is set.
    @PackedTime private var pacingDeadline: Duration?
    /// No batch starts before this (its processor asked for a pause: a backend that is down);
    /// batches are still cut meanwhile.
    @PackedTime private(set) var pausedUntil: Duration?
    private var counters = Counters()

    /// What the flight counts: ``BatcherStatistics`` without the intake's counts (accepted,
    /// pending) and what a snapshot reads off the engine (in flight), 24 bytes a key fewer.
    private struct Counters {
        var completed = 0
        var failed: [FailureReason: Int] = [:]
        var retried = 0
        var batches = 0
        var batchesByReason: [FlushReason: Int] = [:]
        var batchedJobs = 0

        mutating func countFailure(_ reason: FailureReason, times: Int = 1) {
            BatcherStatistics.countFailure(reason, times: times, in: &failed)
        }
    }

    @usableFromInline init(policy: KeyPolicy, reportsCallStart: Bool) {
        self.policy = policy
        self.reportsCallStart = reportsCallStart
    }

    /// The counters of batches and outcomes (the intake counts what it accepts and holds).
    @usableFromInline var statistics: BatcherStatistics {
        var snapshot = BatcherStatistics()
        snapshot.completed = counters.completed
        snapshot.failed = counters.failed
        snapshot.retried = counters.retried
        snapshot.batches = counters.batches
        snapshot.batchesByReason = counters.batchesByReason
        snapshot.batchedJobs = counters.batchedJobs
        snapshot.inFlight = running.count
        return snapshot
    }

    @usableFromInline var isIdle: Bool {
        waiting.isEmpty && running.isEmpty && retrying.isEmpty && heldRetries == nil && rejoining == 0 && deliveries.isEmpty
    }

    /// Whether batch `id` is running (its jobs are `processing`), rather than waiting.
    @usableFromInline func isRunning(_ id: UInt64) -> Bool { running[id] != nil }

    // MARK: - Events

    /// The intake cut batch `id` of `count` jobs: it runs when there is room.
    @usableFromInline mutating func accept(batch id: UInt64, reason: FlushReason, count: Int, now: Duration) -> Effects {
        var effects = Effects()
        waiting.append(Waiting(id: id, reason: reason, count: count))
        effects.flushed.append(BatchSummary(id: id, size: count, reason: reason))
        startReady(now: now, into: &effects)
        return effects
    }

    /// `count` retried jobs are back in the intake (in its open window, or in batches it cut
    /// and handed over before this).
    @usableFromInline mutating func rejoined(_ count: Int) -> Effects {
        rejoining -= count
        var effects = Effects()
        finishStep(into: &effects)
        return effects
    }

    /// A deadline it set is due. `attempts`: for a `timeout`, the try each job of that batch is
    /// on, by position (the batcher keeps the jobs).
    @usableFromInline mutating func deadlineReached(_ deadline: BatcherDeadline, now: Duration, attempts: (Int) -> Int = { _ in 1 }) -> Effects {
        var effects = Effects()
        switch deadline {
        case .window:
            break  // the intake's
        case .retry(let token):
            if heldRetries == token {
                // Their backoff is over: they go first, on their own, in their order.
                heldRetries = nil
                let count = retrying.removeValue(forKey: token) ?? 0
                let batch = Waiting(id: policy.batchIds.next(), reason: .retry, count: count)
                waiting.prepend(batch)
                effects.resent.append(Resent(token: token, batchId: batch.id))
                effects.flushed.append(BatchSummary(id: batch.id, size: count, reason: .retry))
                startReady(now: now, into: &effects)
            } else if let count = retrying.removeValue(forKey: token) {
                rejoining += count
                effects.rejoin.append(token)
            }
        case .timeout(let batchId):
            timeOut(batchId, attempts: attempts, now: now, into: &effects)
        case .pacing:
            pacingDeadline = nil
            startReady(now: now, into: &effects)
        case .pauseEnds:
            // A pause that was extended meanwhile has a later deadline of its own.
            startReady(now: now, into: &effects)
        }
        finishStep(into: &effects)
        return effects
    }

    /// Starts no batch before `until` (batches running go on; batches are cut as usual, within
    /// `maxPending`). A later pause replaces this one, and one that ends at or before `now`
    /// resumes at once. A drain waits for the pause, as it waits for retries.
    @usableFromInline mutating func pause(until: Duration, now: Duration) -> Effects {
        var effects = Effects()
        if until > now {
            pausedUntil = until
            effects.paused = until - now
            effects.deadlines.append(ScheduledDeadline(deadline: .pauseEnds, at: until))
        } else {
            pausedUntil = nil
            startReady(now: now, into: &effects)
        }
        finishStep(into: &effects)
        return effects
    }

    /// A queueing processor's call for batch `batchId` begins now: its timeout starts counting,
    /// so time spent queued is not held against the batch.
    @usableFromInline mutating func callStarted(_ batchId: UInt64, now: Duration) -> CallStart {
        guard running[batchId]?.call == .handedOver else { return .skip }
        running[batchId]?.call = .calling
        var effects = Effects()
        if let timeout = config.timeout {
            effects.deadlines.append(ScheduledDeadline(deadline: .timeout(batchId), at: now + timeout))
        }
        return .proceed(effects)
    }

    /// The processor's call for `batchId` returned, with one verdict per job of the batch in
    /// order; `attempts` gives the try each job was on (read only for verdicts other than
    /// ``Verdicts/allCompleted``).
    @usableFromInline mutating func complete(_ batchId: UInt64, verdicts: Verdicts, attempts: (Int) -> Int, now: Duration) -> Effects {
        var effects = Effects()
        guard let run = running.removeValue(forKey: batchId) else { return effects }  // abandoned meanwhile
        if run.call != .timedOut {
            precondition((verdicts.count ?? run.count) == run.count, "one verdict per job of batch \(batchId)")
            settle(batchId, count: run.count, verdicts: verdicts, fromOutcomes: true, attempts: attempts, now: now, into: &effects)
        }
        startReady(now: now, into: &effects)
        finishStep(into: &effects)
        return effects
    }

    /// The results settled with `token` have all been handed over.
    /// The results settled with `token` have all been handed over: the next results in line,
    /// if any, are handed over now (``Effects/handOver``).
    @usableFromInline mutating func deliveryFinished(_ token: UInt64) -> Effects {
        precondition(deliveries.first == token, "results are handed over in the order they settled")
        _ = deliveries.popFirst()
        var effects = Effects()
        effects.handOver = deliveries.first
        finishStep(into: &effects)
        if isIdle { shedStorage() }
        return effects
    }

    /// A key with nothing in flight keeps no storage for batches: emptied collections keep
    /// their capacity, and 200,000 keys that each ran one batch would hold it all (W7).
    private mutating func shedStorage() {
        waiting = FIFOQueue()
        running = [:]
        retrying = [:]
        deliveries = FIFOQueue()
    }

    /// Says `drained` once everything held is done (the intake has cut its open window and
    /// refuses new jobs). Retries keep their backoff (a backend that is down for two seconds is
    /// still down when input ends): a drain waits for them, within `shutdownTimeout`.
    @usableFromInline mutating func drain() -> Effects {
        var effects = Effects()
        switch phase {
        case .drained:
            effects.drained = true
            return effects
        case .running:
            phase = .draining
        case .draining:
            break
        }
        finishStep(into: &effects)
        return effects
    }

    /// Gives up on the drain: every job still held fails with `shutdown_batch` and `message`,
    /// and running batches' late outcomes are dropped. A job in a running batch keeps that
    /// batch's id and counts that attempt; the others report the attempts they finished.
    @usableFromInline mutating func abandon(reason message: String) -> Effects {
        var effects = Effects()
        if phase == .running { phase = .draining }
        let failure = Fate.failed(.shutdownBatch, message, fromOutcome: false)
        for (batchId, run) in running.sorted(by: { $0.key < $1.key }) where run.call != .timedOut {
            counters.countFailure(.shutdownBatch, times: run.count)
            effects.settled.append(Settled(batchId: batchId, ran: true, fates: .all(failure)))
            effects.released += run.count
        }
        while let batch = waiting.popFirst() {
            counters.countFailure(.shutdownBatch, times: batch.count)
            effects.settled.append(Settled(batchId: batch.id, ran: false, fates: .all(failure)))
            effects.released += batch.count
        }
        for (token, count) in retrying.sorted(by: { $0.key < $1.key }) {
            counters.countFailure(.shutdownBatch, times: count)
            effects.abandonedRetries.append(token)
            effects.released += count
        }
        retrying.removeAll()
        heldRetries = nil
        // Forgetting the running batches drops their late outcomes: `complete` finds nothing.
        running.removeAll()
        finishStep(into: &effects)
        return effects
    }

    /// The intake gave up on `count` jobs of its open window (an abandoned drain): counted as
    /// failed; their results get a delivery token, as settled jobs' do.
    @usableFromInline mutating func abandoned(_ count: Int) -> Effects {
        counters.countFailure(.shutdownBatch, times: count)
        var effects = Effects()
        queueDelivery(into: &effects)
        finishStep(into: &effects)
        return effects
    }

    // MARK: - Internals

    private mutating func startReady(now: Duration, into effects: inout Effects) {
        // `strict`: while retried jobs wait out their backoff, none of the key's later jobs starts.
        guard heldRetries == nil || waiting.first?.reason == .retry else { return }
        if let pausedUntil {
            guard now >= pausedUntil else { return }
            self.pausedUntil = nil
        }
        while running.count < config.maxInFlight, let next = waiting.first {
            if phase == .running, let interval = config.minBatchInterval, let lastStart, now < lastStart + interval {
                if pacingDeadline == nil {
                    pacingDeadline = lastStart + interval
                    effects.deadlines.append(ScheduledDeadline(deadline: .pacing, at: lastStart + interval))
                }
                return
            }
            _ = waiting.popFirst()
            running[next.id] = Running(count: next.count, call: reportsCallStart ? .handedOver : .calling)
            if !reportsCallStart, let timeout = config.timeout {
                effects.deadlines.append(ScheduledDeadline(deadline: .timeout(next.id), at: now + timeout))
            }
            lastStart = now
            counters.batches += 1
            counters.batchesByReason[next.reason, default: 0] += 1
            counters.batchedJobs += next.count
            effects.started.append(next.id)
        }
    }

    private mutating func timeOut(_ batchId: UInt64, attempts: (Int) -> Int, now: Duration, into effects: inout Effects) {
        guard let run = running[batchId], run.call == .calling else { return }
        running[batchId]?.call = .timedOut
        effects.timedOut.append(BatchSummary(id: batchId, size: run.count, reason: .time))
        let message = "batch \(batchId) timed out after \(config.timeout.map { "\($0)" } ?? "?")"
        let verdicts = Verdicts.each([Verdict](repeating: .transient(message, .timeout), count: run.count))
        settle(batchId, count: run.count, verdicts: verdicts, fromOutcomes: false, attempts: attempts, now: now, into: &effects)
    }

    /// Applies each job's verdict: complete it, fail it, or schedule its retry. `fromOutcomes`:
    /// the verdicts are the processor's (its outputs and times count), not a timeout's.
    private mutating func settle(
        _ batchId: UInt64, count: Int, verdicts: Verdicts, fromOutcomes: Bool, attempts: (Int) -> Int, now: Duration,
        into effects: inout Effects
    ) {
        guard case .each(let each) = verdicts else {
            counters.completed += count
            effects.released += count
            effects.settled.append(Settled(batchId: batchId, ran: true, fates: .all(.completed)))
            return
        }
        var fates: [Fate] = []
        fates.reserveCapacity(count)
        var held: (token: UInt64, delay: Duration)?
        for (position, verdict) in each.enumerated() {
            let attempt = attempts(position)
            switch verdict {
            case .completed:
                counters.completed += 1
                effects.released += 1
                fates.append(.completed)
            case .failed(let message, let reason):
                counters.countFailure(reason)
                effects.released += 1
                fates.append(.failed(reason, message, fromOutcome: fromOutcomes))
            case .transient(_, _, let retryAfter) where attempt < config.maxAttempts:
                counters.retried += 1
                let drawn = max(policy.jitter(config.backoffCeiling(beforeRetry: attempt)), retryAfter)
                if config.ordering == .strict {
                    // A batch's retried jobs wait out one backoff together (the longest drawn),
                    // holding the key's later batches back, then go again on their own.
                    if held == nil {
                        nextRetryToken += 1
                        held = (nextRetryToken, drawn)
                    }
                    held!.delay = max(held!.delay, drawn)
                    retrying[held!.token, default: 0] += 1
                    fates.append(.retried(attempt: attempt + 1, delay: drawn, token: held!.token))
                } else if drawn <= .zero {
                    // Back to the intake at once; the token names the job on its way there.
                    nextRetryToken += 1
                    rejoining += 1
                    effects.rejoin.append(nextRetryToken)
                    fates.append(.retried(attempt: attempt + 1, delay: .zero, token: nextRetryToken))
                } else {
                    nextRetryToken += 1
                    retrying[nextRetryToken] = 1
                    effects.deadlines.append(ScheduledDeadline(deadline: .retry(nextRetryToken), at: now + drawn))
                    fates.append(.retried(attempt: attempt + 1, delay: drawn, token: nextRetryToken))
                }
            case .transient(let message, let reason, _):
                // A crash, or a reason the processor named, keeps its name: it says more than
                // "attempts ran out".
                let finalReason = config.maxAttempts > 1 && reason != .crashed && !reason.isNamed ? FailureReason.maxRetry : reason
                counters.countFailure(finalReason)
                effects.released += 1
                fates.append(.failed(finalReason, message, fromOutcome: false))
            }
        }
        if let held {
            heldRetries = held.token
            // Every job of the batch held back waits for the longest delay drawn.
            for position in fates.indices {
                if case .retried(let attempt, _, held.token) = fates[position] {
                    fates[position] = .retried(attempt: attempt, delay: held.delay, token: held.token)
                }
            }
            effects.deadlines.append(ScheduledDeadline(deadline: .retry(held.token), at: now + max(held.delay, .zero)))
        }
        effects.settled.append(Settled(batchId: batchId, ran: true, fates: .each(fates)))
    }

    /// Gives the results of this event a delivery token, in line behind any still going out.
    private mutating func queueDelivery(into effects: inout Effects) {
        nextDeliveryToken += 1
        if deliveries.isEmpty { effects.handOver = nextDeliveryToken }
        deliveries.append(nextDeliveryToken)
        effects.delivery = nextDeliveryToken
    }

    /// Every event ends here: settled jobs get a delivery token, and an idle drain ends.
    private mutating func finishStep(into effects: inout Effects) {
        if effects.settlesJobs, effects.delivery == nil { queueDelivery(into: &effects) }
        if phase == .draining, isIdle {
            phase = .drained
            effects.drained = true
        }
        // A key with nothing in flight keeps no storage for batches.
        if isIdle, running.capacity > 8 {
            running = [:]
            waiting = FIFOQueue()
            retrying = [:]
            deliveries = FIFOQueue()
        }
    }
}
