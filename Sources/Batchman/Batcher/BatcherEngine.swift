/// The decisions of one batcher, with no payloads in sight: which jobs wait, when a batch is
/// cut, which batches run, what each job's verdict does, and when a failed job is tried again.
///
/// Not generic: it works on job slots (indexes into the slot table the generic ``Batcher``
/// keeps payloads and result handlers in), sizes and durations since the batcher's clock
/// origin. So it is compiled once, here, and needs none of the `@inlinable` the generic layer
/// needs. Pure: each event returns what to do, as ``Effects``, for the batcher to carry out
/// after releasing its lock; a test checks a transition with `==`.
@usableFromInline struct BatcherEngine: Sendable {
    /// Draws a retry's delay below a ceiling (full jitter); injected so tests can pin it.
    @usableFromInline typealias Jitter = @Sendable (_ ceiling: Duration) -> Duration

    /// The batcher's lifecycle.
    enum Phase: Equatable, Sendable {
        /// Taking jobs.
        case accepting
        /// Shutdown began: new jobs are refused, waiting jobs are cut at once, retries keep their
        /// backoff; the drain waiters are told once the batcher is idle.
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

    /// Why a job was not accepted.
    @usableFromInline enum Refusal: Equatable, Sendable {
        case shuttingDown
        case duplicate
        case tooLarge(size: Int, limit: Int)
    }

    @usableFromInline enum SubmitAction: Equatable, Sendable {
        /// The job holds `slot` now; carry out `effects` (nil: nothing to do, as for almost
        /// every job, so the hot path copies no effects around).
        case accepted(slot: Int, Effects?)
        case refused(Refusal)
        /// The key holds `maxPending` jobs already.
        case full
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

        func verdict(at position: Int) -> Verdict {
            switch self {
            case .allCompleted: .completed
            case .each(let verdicts): verdicts[position]
            }
        }

        var count: Int? {
            guard case .each(let verdicts) = self else { return nil }
            return verdicts.count
        }
    }

    /// One job held by the batcher.
    struct SlotRecord: Sendable {
        var identity: JobIdentity
        /// The identity's hash, kept so that removing the job from ``index`` hashes nothing.
        let hash: Int
        /// Payload bytes, counted against `maxBatchBytes`.
        var size: Int
        var attempt: Int
        /// The window the job waits in (windows up to `startedThrough` are processing), or 0
        /// while it waits for a retry.
        var window: UInt64
    }

    struct SealedBatch: Sendable {
        let id: UInt64
        let window: UInt64
        let reason: FlushReason
        let slots: [Int]
    }

    /// Under `ordering` `strict`: the jobs of a batch that are retried, in their order, waiting
    /// out their backoff (nothing else of the key starts meanwhile), then sent on their own.
    struct HeldRetries: Equatable, Sendable {
        let token: UInt64
        let slots: [Int]
    }

    struct RunningBatch: Sendable {
        let slots: [Int]
        var call: CallPhase
    }

    let key: String
    let policy: KeyPolicy
    var config: BatcherConfig { policy.config }
    /// The processor says itself when a call begins (a queueing processor); otherwise the call
    /// begins when the batch starts.
    let reportsCallStart: Bool

    private(set) var phase = Phase.accepting
    /// Every job held, by slot; a free slot keeps an empty identity.
    private var slots: [SlotRecord] = []
    private var freeSlots: [Int] = []
    /// Slots by job identity: one hash per submit, none per result.
    private var index = JobIndex()
    /// The open window's jobs, in the order they joined it.
    private var open: [Int] = []
    private var openBytes = 0
    /// The open window's number; it goes up each time a batch is cut.
    private var window: UInt64 = 1
    /// Batches start in window order, so every window up to this one is processing or done.
    private var startedThrough: UInt64 = 0
    private var sealed = FIFOQueue<SealedBatch>()
    private var running: [UInt64: RunningBatch] = [:]
    private var retrying: [UInt64: Int] = [:]
    private var nextRetryToken: UInt64 = 0
    /// `strict` ordering: retried jobs that hold the key's later batches back until they settle.
    private var heldRetries: HeldRetries?
    /// Results being handed over, by token: a drain waits for them.
    private var deliveries: Set<UInt64> = []
    private var nextDeliveryToken: UInt64 = 0
    private var lastStart: Duration?
    /// When the `minBatchInterval` deadline set is due, while one is set.
    private var pacingDeadline: Duration?
    /// No batch starts before this (its processor asked for a pause: a backend that is down);
    /// jobs are still taken, and batches cut, meanwhile.
    private(set) var pausedUntil: Duration?
    private var counters = BatcherStatistics()

    @usableFromInline init(key: String, policy: KeyPolicy, reportsCallStart: Bool) {
        self.key = key
        self.policy = policy
        self.reportsCallStart = reportsCallStart
    }

    @usableFromInline var statistics: BatcherStatistics {
        var snapshot = counters
        snapshot.pending = index.count
        snapshot.inFlight = running.count
        return snapshot
    }

    var isIdle: Bool {
        open.isEmpty && sealed.isEmpty && running.isEmpty && retrying.isEmpty && heldRetries == nil && deliveries.isEmpty
    }

    /// The slot and status of the job with `identity`, while it is held.
    @usableFromInline func lookUp(_ identity: JobIdentity) -> (slot: Int, status: JobStatus, attempt: Int)? {
        guard let slot = slot(of: identity, hash: identity.hashValue) else { return nil }
        let record = slots[slot]
        let isProcessing = record.window != 0 && record.window <= startedThrough
        return (slot, isProcessing ? .processing : .submitted, record.attempt)
    }

    /// The try a held job is on.
    func attempt(ofSlot slot: Int) -> Int { slots[slot].attempt }

    // MARK: - Events

    /// A job arrives. `now` is read only if the job opens a window or cuts a batch.
    @usableFromInline mutating func submit(_ identity: JobIdentity, size: Int, now: () -> Duration) -> SubmitAction {
        guard phase == .accepting else { return .refused(.shuttingDown) }
        let hash = identity.hashValue
        if let maxBatchBytes = config.maxBatchBytes, size > maxBatchBytes {
            return .refused(slot(of: identity, hash: hash) == nil ? .tooLarge(size: size, limit: maxBatchBytes) : .duplicate)
        }
        if let maxPending = config.maxPending, index.count >= maxPending {
            return slot(of: identity, hash: hash) == nil ? .full : .refused(.duplicate)
        }
        // One probe for the duplicate check and the insert.
        let slot = freeSlots.last ?? slots.count
        let duplicate = withIndex { index, slots in
            index.insert(slot, hash: hash, hashOf: { slots[$0].hash }, matches: { slots[$0].identity == identity })
        }
        if duplicate != nil { return .refused(.duplicate) }
        let record = SlotRecord(identity: identity, hash: hash, size: size, attempt: 1, window: 0)
        if freeSlots.isEmpty {
            slots.append(record)
        } else {
            freeSlots.removeLast()
            slots[slot] = record
        }
        counters.accepted += 1
        // The common case: the job joins a window that is open already and does not fill it.
        if !open.isEmpty, open.count + 1 < config.maxBatchSize, config.maxBatchBytes.map({ openBytes + size <= $0 }) ?? true {
            slots[slot].window = window
            open.append(slot)
            openBytes += size
            return .accepted(slot: slot, nil)
        }
        var effects = Effects()
        enqueue(slot, now: now, into: &effects)
        return .accepted(slot: slot, effects)
    }

    @usableFromInline mutating func deadlineReached(_ deadline: BatcherDeadline, now: Duration) -> Effects {
        var effects = Effects()
        switch deadline {
        case .window(let deadlineWindow):
            if deadlineWindow == window, !open.isEmpty { seal(reason: .time, now: now, into: &effects) }
        case .retry(let token):
            if let slot = retrying.removeValue(forKey: token) {
                enqueue(slot, now: { now }, into: &effects)
            } else if let held = heldRetries, held.token == token {
                // Their backoff is over: they go first, on their own, in their order.
                heldRetries = nil
                let batch = SealedBatch(id: policy.batchIds.next(), window: 0, reason: .retry, slots: held.slots)
                sealed.prepend(batch)
                effects.flushed.append(BatchSummary(id: batch.id, size: held.slots.count, reason: .retry))
                startReady(now: now, into: &effects)
            }
        case .timeout(let batchId):
            timeOut(batchId, now: now, into: &effects)
        case .pacing:
            pacingDeadline = nil
            startReady(now: now, into: &effects)
        case .pauseEnds:
            // A pause that was extended meanwhile has a later deadline of its own.
            startReady(now: now, into: &effects)
        }
        finishStep(now: now, into: &effects)
        return effects
    }

    /// Starts no batch before `until` (batches running go on; jobs are taken and batches cut as
    /// usual, within `maxPending`). A later pause replaces this one, and one that ends at or
    /// before `now` resumes at once. A drain waits for the pause, as it waits for retries.
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
        finishStep(now: now, into: &effects)
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
    /// order (see ``Batcher``'s matching of outcomes to jobs).
    @usableFromInline mutating func complete(_ batchId: UInt64, verdicts: Verdicts, now: Duration) -> Effects {
        var effects = Effects()
        guard let run = running.removeValue(forKey: batchId) else { return effects }  // abandoned meanwhile
        if run.call != .timedOut {
            precondition((verdicts.count ?? run.slots.count) == run.slots.count, "one verdict per job of batch \(batchId)")
            settle(batchId, run.slots, verdicts: verdicts, fromOutcomes: true, now: now, into: &effects)
        }
        startReady(now: now, into: &effects)
        finishStep(now: now, into: &effects)
        return effects
    }

    /// The results settled with `token` have all been handed over.
    @usableFromInline mutating func deliveryFinished(_ token: UInt64, now: Duration) -> Effects {
        deliveries.remove(token)
        var effects = Effects()
        finishStep(now: now, into: &effects)
        return effects
    }

    /// Refuses new jobs, cuts every waiting job into batches at once, and says `drained` once
    /// everything is done. Retries keep their backoff (a backend that is down for two seconds
    /// is still down when input ends): a drain waits for them, within `shutdownTimeout`.
    @usableFromInline mutating func drain(now: Duration) -> Effects {
        var effects = Effects()
        switch phase {
        case .drained:
            effects.drained = true
            return effects
        case .accepting:
            phase = .draining
        case .draining:
            break
        }
        finishStep(now: now, into: &effects)
        return effects
    }

    /// Gives up on the drain: every job still held fails with `shutdown_batch` and `message`,
    /// and running batches' late outcomes are dropped. A job in a running batch keeps that
    /// batch's id and counts that attempt; the others report the attempts they finished.
    @usableFromInline mutating func abandon(reason message: String, now: Duration) -> Effects {
        var effects = Effects()
        if phase == .accepting { phase = .draining }
        let outcome = Settlement.Outcome.failed(.shutdownBatch, message)
        for (batchId, run) in running.sorted(by: { $0.key < $1.key }) where run.call != .timedOut {
            for slot in run.slots {
                finish(Settlement(slot: slot, batchId: batchId, attempts: slots[slot].attempt, position: nil, outcome: outcome),
                       into: &effects)
            }
        }
        for slot in index.slots.sorted() {
            finish(Settlement(slot: slot, batchId: nil, attempts: slots[slot].attempt - 1, position: nil, outcome: outcome),
                   into: &effects)
        }
        open = []
        openBytes = 0
        sealed = FIFOQueue()
        retrying.removeAll()
        heldRetries = nil
        window += 1
        // Forgetting the running batches drops their late outcomes: `complete` finds nothing.
        running.removeAll()
        finishStep(now: now, into: &effects)
        return effects
    }

    // MARK: - Internals

    private func slot(of identity: JobIdentity, hash: Int) -> Int? {
        index.find(hash: hash, hashOf: { slots[$0].hash }, matches: { slots[$0].identity == identity })
    }

    /// Runs `body` on the index with the slot table beside it: the index is moved out for the
    /// call, so that changing it while reading the slots is not an overlapping access to `self`.
    private mutating func withIndex<Result>(_ body: (inout JobIndex, _ slots: [SlotRecord]) -> Result) -> Result {
        var moved = JobIndex()
        swap(&moved, &index)
        defer { swap(&moved, &index) }
        return body(&moved, slots)
    }

    /// Puts a held job into the open window, cutting batches as size and bytes demand.
    private mutating func enqueue(_ slot: Int, now: () -> Duration, into effects: inout Effects) {
        let size = slots[slot].size
        if let maxBatchBytes = config.maxBatchBytes, !open.isEmpty, openBytes + size > maxBatchBytes {
            seal(reason: .bytes, now: now(), into: &effects)
        }
        slots[slot].window = window
        open.append(slot)
        openBytes += size
        if open.count >= config.maxBatchSize {
            seal(reason: .size, now: now(), into: &effects)
        } else if open.count == 1 {
            effects.deadlines.append(ScheduledDeadline(deadline: .window(window), at: now() + config.frequency))
        }
    }

    private mutating func seal(reason: FlushReason, now: Duration, into effects: inout Effects) {
        let batch = SealedBatch(id: policy.batchIds.next(), window: window, reason: reason, slots: open)
        sealed.append(batch)
        effects.flushed.append(BatchSummary(id: batch.id, size: open.count, reason: reason))
        open = []
        openBytes = 0
        window += 1
        startReady(now: now, into: &effects)
    }

    private mutating func startReady(now: Duration, into effects: inout Effects) {
        // `strict`: while retried jobs wait out their backoff, none of the key's later jobs starts.
        guard heldRetries == nil else { return }
        if let pausedUntil {
            guard now >= pausedUntil else { return }
            self.pausedUntil = nil
        }
        while running.count < config.maxInFlight, let next = sealed.first {
            if phase == .accepting, let interval = config.minBatchInterval, let lastStart, now < lastStart + interval {
                if pacingDeadline == nil {
                    pacingDeadline = lastStart + interval
                    effects.deadlines.append(ScheduledDeadline(deadline: .pacing, at: lastStart + interval))
                }
                return
            }
            _ = sealed.popFirst()
            running[next.id] = RunningBatch(slots: next.slots, call: reportsCallStart ? .handedOver : .calling)
            if !reportsCallStart, let timeout = config.timeout {
                effects.deadlines.append(ScheduledDeadline(deadline: .timeout(next.id), at: now + timeout))
            }
            if next.reason == .retry {
                // Jobs of an earlier window: they are processing again, the open window is not.
                for slot in next.slots { slots[slot].window = max(1, startedThrough) }
            } else {
                startedThrough = next.window
            }
            lastStart = now
            counters.batches += 1
            counters.batchesByReason[next.reason, default: 0] += 1
            counters.batchedJobs += next.slots.count
            effects.started.append(StartedBatch(id: next.id, reason: next.reason, slots: next.slots))
        }
    }

    private mutating func timeOut(_ batchId: UInt64, now: Duration, into effects: inout Effects) {
        guard let run = running[batchId], run.call == .calling else { return }
        running[batchId]?.call = .timedOut
        effects.timedOut.append(BatchSummary(id: batchId, size: run.slots.count, reason: .time))
        let message = "batch \(batchId) timed out after \(config.timeout.map { "\($0)" } ?? "?")"
        let verdicts = Verdicts.each([Verdict](repeating: .transient(message, .timeout), count: run.slots.count))
        settle(batchId, run.slots, verdicts: verdicts, fromOutcomes: false, now: now, into: &effects)
    }

    /// Applies each job's verdict: complete it, fail it, or schedule its retry. `fromOutcomes`:
    /// the verdicts are the processor's (its outputs and times count), not a timeout's.
    private mutating func settle(
        _ batchId: UInt64, _ batchSlots: [Int], verdicts: Verdicts, fromOutcomes: Bool, now: Duration,
        into effects: inout Effects
    ) {
        var retried: [Int] = []
        var retriedAfter = Duration.zero
        defer { if !retried.isEmpty { holdForRetry(retried, after: retriedAfter, now: now, into: &effects) } }
        for (position, slot) in batchSlots.enumerated() {
            let attempt = slots[slot].attempt
            switch verdicts.verdict(at: position) {
            case .completed:
                counters.completed += 1
                finish(Settlement(slot: slot, batchId: batchId, attempts: attempt, position: position, outcome: .completed),
                       into: &effects)
            case .failed(let message, let reason):
                finish(Settlement(slot: slot, batchId: batchId, attempts: attempt, position: fromOutcomes ? position : nil,
                                  outcome: .failed(reason, message)), into: &effects)
            case .transient(_, _, let retryAfter) where attempt < config.maxAttempts:
                if config.ordering == .strict {
                    retried.append(slot)
                    retriedAfter = max(retriedAfter, retryAfter)
                } else {
                    retry(slot, after: retryAfter, now: now, into: &effects)
                }
            case .transient(let message, let reason, _):
                // A crash, or a reason the processor named, keeps its name: it says more than
                // "attempts ran out".
                let finalReason = config.maxAttempts > 1 && reason != .crashed && !reason.isNamed ? FailureReason.maxRetry : reason
                finish(Settlement(slot: slot, batchId: batchId, attempts: attempt, position: nil,
                                  outcome: .failed(finalReason, message)), into: &effects)
            }
        }
    }

    /// `strict` ordering: a batch's retried jobs wait out one backoff together, holding the
    /// key's later batches back, and are then sent again on their own, in their order; not
    /// before `floor` (the longest retry-after the processor named for them).
    private mutating func holdForRetry(_ retried: [Int], after floor: Duration, now: Duration, into effects: inout Effects) {
        let attempt = slots[retried[0]].attempt
        let delay = max(policy.jitter(config.backoffCeiling(beforeRetry: attempt)), floor)
        for slot in retried {
            slots[slot].attempt += 1
            slots[slot].window = 0
            counters.retried += 1
            effects.retried.append(RetriedJob(slot: slot, attempt: slots[slot].attempt, delay: delay))
        }
        nextRetryToken += 1
        heldRetries = HeldRetries(token: nextRetryToken, slots: retried)
        effects.deadlines.append(ScheduledDeadline(deadline: .retry(nextRetryToken), at: now + max(delay, .zero)))
    }

    /// Schedules a job's next try after its backoff, and not before `floor` (the processor's
    /// retry-after: a backend that says "in 2 s" is not asked again sooner).
    private mutating func retry(_ slot: Int, after floor: Duration, now: Duration, into effects: inout Effects) {
        let attempt = slots[slot].attempt
        slots[slot].attempt = attempt + 1
        slots[slot].window = 0
        counters.retried += 1
        let delay = max(policy.jitter(config.backoffCeiling(beforeRetry: attempt)), floor)
        effects.retried.append(RetriedJob(slot: slot, attempt: attempt + 1, delay: delay))
        if delay <= .zero {
            enqueue(slot, now: { now }, into: &effects)
        } else {
            nextRetryToken += 1
            retrying[nextRetryToken] = slot
            effects.deadlines.append(ScheduledDeadline(deadline: .retry(nextRetryToken), at: now + delay))
        }
    }

    /// The job in `settlement.slot` is done: its identity and slot are free again.
    private mutating func finish(_ settlement: Settlement, into effects: inout Effects) {
        let slot = settlement.slot
        withIndex { index, slots in index.remove(slot, hash: slots[slot].hash, hashOf: { slots[$0].hash }) }
        slots[slot].identity = JobIdentity(key: "", id: "")
        freeSlots.append(slot)
        if case .failed(let reason, _) = settlement.outcome { counters.countFailure(reason) }
        effects.released += 1
        effects.settled.append(settlement)
    }

    /// Every event ends here: settled jobs get a delivery token; while draining nothing waits
    /// for its window, and an idle batcher ends its drain.
    private mutating func finishStep(now: Duration, into effects: inout Effects) {
        if phase == .draining, !open.isEmpty { seal(reason: .shutdown, now: now, into: &effects) }
        if !effects.settled.isEmpty, effects.delivery == nil {
            nextDeliveryToken += 1
            deliveries.insert(nextDeliveryToken)
            effects.delivery = nextDeliveryToken
        }
        if phase == .draining, isIdle {
            phase = .drained
            effects.drained = true
        }
        // A key that holds no job keeps no storage for jobs (slots, index, windows): an idle key
        // costs its counters and its table entry, whatever it once held. The next job
        // allocates again: a few small arrays, against the batch it will be in.
        if isIdle, !slots.isEmpty, freeSlots.count == slots.count {
            slots = []
            freeSlots = []
            index = JobIndex()
            open = []
            sealed = FIFOQueue()
            running = [:]
            retrying = [:]
            deliveries = []
            effects.releasedStorage = true
        }
    }
}
