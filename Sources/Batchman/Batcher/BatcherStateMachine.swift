import FoundationEssentials

/// The decisions of one batcher: which jobs are pending, when a batch is cut, which batch runs
/// next, and what each job's result is. Pure: it returns ``Actions`` for ``Batcher`` to carry
/// out after releasing its lock.
struct BatcherStateMachine<Payload: Sendable, Output: Sendable> {
    typealias Handler = ResultHandler<Payload, Output>

    struct Delivery: Sendable {
        let handler: Handler
        let result: JobResult<Payload, Output>
    }

    /// What the batcher must do once the lock is released.
    struct Actions: Sendable {
        /// Arm the flush deadline of this window, `frequency` from now.
        var scheduleWindow: UInt64?
        /// Batches just cut (for events and debug logs).
        var flushed: [Batch<Payload>] = []
        /// Batches to hand to the processor now.
        var start: [Batch<Payload>] = []
        /// Results to hand to their submitters.
        var deliveries: [Delivery] = []
        /// Misbehaviour of the processor worth a warning.
        var warnings: [String] = []
        /// Shutdown callers to resume: the batcher has drained.
        var drained: [CheckedContinuation<Void, Never>] = []
    }

    enum SubmitDecision {
        case accepted(Actions)
        case rejected(FailureReason, String)
    }

    private struct Record {
        var job: Job<Payload>
        let handler: Handler
        /// The window the job waits in; windows up to `startedThrough` are processing.
        var window: UInt64
    }

    private struct Sealed {
        let window: UInt64
        let batch: Batch<Payload>
    }

    let key: String
    let config: BatcherConfig
    private let batchIds: BatchIdGenerator
    private let maxInFlight = 1

    /// Every job that is submitted or processing, by identity: O(1) duplicate checks and lookups.
    private var records: [JobIdentity: Record] = [:]
    /// The jobs of the open window, in submission order.
    private var open: [Job<Payload>] = []
    /// The open window's number; it goes up each time a batch is cut.
    private(set) var window: UInt64 = 1
    /// Batches start in window order, so every window up to this one is processing or done.
    private var startedThrough: UInt64 = 0
    private var sealed = FIFOQueue<Sealed>()
    private var processing = 0
    /// Batches whose results are still being handed over.
    private var delivering = 0
    private var isDraining = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []

    init(key: String, config: BatcherConfig, batchIds: BatchIdGenerator) {
        self.key = key
        self.config = config
        self.batchIds = batchIds
    }

    var pendingCount: Int { records.count }

    private var isIdle: Bool { open.isEmpty && sealed.isEmpty && processing == 0 && delivering == 0 }

    mutating func submit(_ job: Job<Payload>, handler: Handler) -> SubmitDecision {
        if isDraining {
            return .rejected(.shutdownBatch, "Batchman is shutting down; job \"\(job.id)\" was not accepted")
        }
        let identity = job.identity
        guard records[identity] == nil else {
            return .rejected(.duplicate, "Job \"\(job.id)\" is already pending for key \"\(job.key)\"")
        }
        records[identity] = Record(job: job, handler: handler, window: window)
        open.append(job)
        var actions = Actions()
        if open.count >= config.maxBatchSize {
            seal(reason: .size, into: &actions)
        } else if open.count == 1 {
            actions.scheduleWindow = window
        }
        return .accepted(actions)
    }

    /// The job with `identity` while it is submitted or processing.
    func job(_ identity: JobIdentity) -> Job<Payload>? {
        guard let record = records[identity] else { return nil }
        var job = record.job
        job.status = record.window <= startedThrough ? .processing : .submitted
        return job
    }

    mutating func deadlineReached(window deadlineWindow: UInt64) -> Actions {
        var actions = Actions()
        if deadlineWindow == window, !open.isEmpty { seal(reason: .time, into: &actions) }
        return actions
    }

    /// The processor finished `batch` with `outcome` (its outcomes, or the error it threw).
    mutating func complete(
        _ batch: Batch<Payload>, outcome: Result<[JobOutcome<Output>], any Error>, now: Date
    ) -> Actions {
        processing -= 1
        var actions = Actions()
        switch outcome {
        case .success(let outcomes):
            let matched = match(outcomes, to: batch, warnings: &actions.warnings)
            for (job, jobOutcome) in zip(batch.jobs, matched) {
                finish(job, in: batch, with: jobOutcome, now: now, into: &actions)
            }
        case .failure(let error):
            for job in batch.jobs {
                finish(job, in: batch, with: .thrown("\(error)"), now: now, into: &actions)
            }
        }
        if !actions.deliveries.isEmpty { delivering += 1 }
        startReady(into: &actions)
        takeDrainWaitersIfIdle(into: &actions)
        return actions
    }

    /// The results of one completed batch have all been handed over.
    mutating func deliveryFinished() -> Actions {
        delivering -= 1
        var actions = Actions()
        takeDrainWaitersIfIdle(into: &actions)
        return actions
    }

    /// Refuses new jobs, cuts the open window, and resumes `waiter` once everything is done.
    mutating func drain(_ waiter: CheckedContinuation<Void, Never>) -> Actions {
        isDraining = true
        drainWaiters.append(waiter)
        var actions = Actions()
        if !open.isEmpty { seal(reason: .shutdown, into: &actions) }
        takeDrainWaitersIfIdle(into: &actions)
        return actions
    }

    // MARK: - Internals

    private mutating func seal(reason: FlushReason, into actions: inout Actions) {
        let batch = Batch(id: batchIds.next(), key: key, jobs: open, reason: reason)
        sealed.append(Sealed(window: window, batch: batch))
        actions.flushed.append(batch)
        open = []
        window += 1
        startReady(into: &actions)
    }

    private mutating func startReady(into actions: inout Actions) {
        while processing < maxInFlight, let next = sealed.popFirst() {
            processing += 1
            startedThrough = next.window
            actions.start.append(next.batch)
        }
    }

    private mutating func takeDrainWaitersIfIdle(into actions: inout Actions) {
        guard isDraining, isIdle, !drainWaiters.isEmpty else { return }
        actions.drained = drainWaiters
        drainWaiters = []
    }

    /// What became of one job, after matching.
    private enum Matched {
        case outcome(JobOutcome<Output>)
        case missing
        case thrown(String)
    }

    /// Lines `outcomes` up with `batch.jobs`. Processors usually answer in order, so that is
    /// checked first and costs no hashing; otherwise outcomes are matched by identity.
    private func match(
        _ outcomes: [JobOutcome<Output>], to batch: Batch<Payload>, warnings: inout [String]
    ) -> [Matched] {
        let jobs = batch.jobs
        if outcomes.count == jobs.count,
           zip(outcomes, jobs).allSatisfy({ $0.id == $1.id && $0.key == $1.key }) {
            return outcomes.map { .outcome($0) }
        }
        var indexByIdentity: [JobIdentity: Int] = [:]
        indexByIdentity.reserveCapacity(jobs.count)
        for (index, job) in jobs.enumerated() { indexByIdentity[job.identity] = index }
        var matched = [Matched](repeating: .missing, count: jobs.count)
        for outcome in outcomes {
            guard let index = indexByIdentity[outcome.identity] else {
                warnings.append("batch \(batch.id) (key \"\(key)\"): ignoring a result for job \"\(outcome.id)\" (key \"\(outcome.key)\"), which is not in the batch")
                continue
            }
            guard case .missing = matched[index] else {
                warnings.append("batch \(batch.id) (key \"\(key)\"): ignoring a second result for job \"\(outcome.id)\"")
                continue
            }
            matched[index] = .outcome(outcome)
        }
        return matched
    }

    private mutating func finish(
        _ job: Job<Payload>, in batch: Batch<Payload>, with matched: Matched, now: Date,
        into actions: inout Actions
    ) {
        guard let record = records.removeValue(forKey: job.identity) else { return }
        let result: JobResult<Payload, Output>
        switch matched {
        case .outcome(let outcome) where outcome.status != .failed:
            result = JobResult(job: job, status: .completed, result: outcome.result, errorReason: nil,
                               errorMessage: nil, batchId: batch.id, attempts: job.attempt,
                               completedAt: outcome.completedAt ?? now)
        case .outcome(let outcome):
            result = .failure(job, reason: .error, message: outcome.errorMessage ?? "Processor failed the job",
                              batchId: batch.id, attempts: job.attempt, at: outcome.completedAt ?? now)
        case .missing:
            result = .failure(job, reason: .error, message: "No result returned for job", batchId: batch.id,
                              attempts: job.attempt, at: now)
        case .thrown(let message):
            result = .failure(job, reason: .error, message: message, batchId: batch.id, attempts: job.attempt, at: now)
        }
        actions.deliveries.append(Delivery(handler: record.handler, result: result))
    }
}
