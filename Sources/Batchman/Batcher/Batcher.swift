import FoundationEssentials
import Synchronization

/// One key's batcher: the thin generic layer around its two engines.
///
/// A key's state is split between the threads that submit jobs and the thread that settles
/// batches, each half under its own lock, so that they do not take turns on one:
/// - the **intake** (``IntakeEngine``, taken once per submit or per run of jobs): the duplicate
///   index and the open window, whose jobs and handlers this layer keeps in step with it;
/// - the **flight** (``FlightEngine``, taken about twice per batch): cut batches from their cut
///   to their results, with their jobs, handlers and slots (``Cargo``), and jobs awaiting a retry.
///
/// Lock order: intake, then flight, never the other way. A cut batch crosses from the intake
/// to the flight under both (so that no batch is ever in neither, which a drain would miss), and
/// so do retried jobs going back to the intake. A settled batch's slots go back to the intake
/// in one call, before its results are handed over (so that a result's callback may submit the
/// same id again). Batches are matched before a lock, and results are built and handed over
/// after the locks are released.
@usableFromInline final class Batcher<Payload: Sendable, Output: Sendable, C: Clock>: Sendable
where C.Duration == Duration {
    @usableFromInline typealias Handler = ResultHandler<Payload, Output>
    @usableFromInline typealias Handlers = HandlerRuns<Payload, Output>
    @usableFromInline typealias Outcomes = Result<[JobOutcome<Output>], any Error>

    /// A batch from its cut to its results: its jobs (the very array the processor is handed),
    /// their handlers, and their slots in the intake's index.
    @usableFromInline struct Cargo: Sendable {
        /// The batch's id (0 for jobs given up on before they were in one).
        @usableFromInline let id: UInt64
        @usableFromInline var jobs: [Job<Payload>]
        @usableFromInline var handlers: Handlers
        @usableFromInline let slots: [Int]
        @usableFromInline let reason: FlushReason

        @inlinable init(id: UInt64, jobs: [Job<Payload>], handlers: Handlers, slots: [Int], reason: FlushReason) {
            self.id = id
            self.jobs = jobs
            self.handlers = handlers
            self.slots = slots
            self.reason = reason
        }
    }

    /// A job waiting to be tried again (its `attempt` is the next try's).
    @usableFromInline struct Retry: Sendable {
        @usableFromInline var job: Job<Payload>
        @usableFromInline let handler: Handler
        @usableFromInline let slot: Int

        @inlinable init(job: Job<Payload>, handler: Handler, slot: Int) {
            self.job = job
            self.handler = handler
            self.slot = slot
        }
    }

    /// The producers' half: the intake engine and the open window's jobs and handlers.
    @usableFromInline struct IntakeState: Sendable {
        @usableFromInline var engine: IntakeEngine
        @usableFromInline var jobs: [Job<Payload>] = []
        @usableFromInline var handlers = Handlers()

        @inlinable init(engine: IntakeEngine) {
            self.engine = engine
        }

        /// Takes the open window's jobs out for the batch the engine cut.
        @inlinable mutating func take(_ cut: IntakeEngine.Cut) -> Cargo {
            let cargo = Cargo(id: cut.id, jobs: jobs, handlers: handlers, slots: cut.slots, reason: cut.reason)
            jobs = []
            handlers = Handlers()
            return cargo
        }

        /// Puts `job` into the open window as the engine's `effects` say, collecting the batches
        /// cut on the way. Returns the window deadline to set, if the job opened a window.
        @inlinable mutating func join(
            _ job: Job<Payload>, handler: Handler, _ effects: IntakeEngine.Effects, cutting cuts: inout [Cargo]
        ) -> (window: UInt64, at: Duration)? {
            if let cut = effects.cutBefore { cuts.append(take(cut)) }
            jobs.append(Job(copying: job))
            handlers.append(handler)
            if let cut = effects.cutAfter { cuts.append(take(cut)) }
            return effects.windowDeadline.map { (effects.window, $0) }
        }
    }

    @usableFromInline let key: String
    @usableFromInline let policy: KeyPolicy
    @usableFromInline let intake: Mutex<IntakeState>
    @usableFromInline let flight: Mutex<FlightState>
    @usableFromInline let processor: any BatchProcessor<Payload, Output>
    /// Asked once: whether the processor queues its batches itself (see ``start(_:)``).
    @usableFromInline let processorQueues: Bool
    /// The clock, scheduler and shared state every key of the ``Batchman`` shares.
    @usableFromInline let context: BatcherContext<Payload, C>

    @inlinable init(key: String, policy: KeyPolicy, processor: any BatchProcessor<Payload, Output>, context: BatcherContext<Payload, C>) {
        self.key = key
        self.policy = policy
        self.processor = processor
        let queues = processor.queuesItsBatches
        self.processorQueues = queues
        self.intake = Mutex(IntakeState(engine: IntakeEngine(policy: policy)))
        self.flight = Mutex(FlightState(engine: FlightEngine(policy: policy, reportsCallStart: queues)))
        self.context = context
    }

    @inlinable var clock: C { context.clock }
    @inlinable var origin: C.Instant { context.origin }
    @inlinable var scheduler: FlushScheduler { context.scheduler }
    @inlinable var shared: BatchmanShared { context.shared }
    /// A payload's size in bytes, for `maxBatchBytes`; nil when no limit needs it.
    @inlinable var payloadSize: (@Sendable (Payload) -> Int)? { context.payloadSize }
    @inlinable var config: BatcherConfig { policy.config }
    @inlinable var events: EventBroadcaster { shared.events }
    @inlinable var logger: BatchmanLogger { shared.logger }
    /// The time since the clock's origin: what the engines and the scheduler count in.
    @inlinable var now: Duration { origin.duration(to: clock.now) }

    /// What became of a submitted job (no job in it: see ``Batchman/Attempt``).
    @usableFromInline enum Submission {
        case accepted
        /// Refused; the handler already has its failed result.
        case refused
        /// The key is at `maxPending`.
        case full
    }

    // MARK: - Submitting

    /// Accepts `job`, answers `handler` at once with the reason it was refused, or says the key is full.
    @inlinable func submit(_ job: Job<Payload>, handler: Handler) -> Submission {
        let size = payloadSize?(job.payload) ?? 0
        var work: Work?
        let action = intake.withLock { intake -> IntakeEngine.SubmitAction in
            let action = intake.engine.submit(job.identity, size: size)
            switch action {
            case .accepted:
                // The common case: the job joins the open window, and nothing else happens.
                intake.jobs.append(Job(copying: job))
                intake.handlers.append(handler)
            case .acceptedToJoin(let slot):
                var cuts: [Cargo] = []
                let deadline = intake.join(job, handler: handler, intake.engine.join(slot, size: size, now: { now }), cutting: &cuts)
                work = handOver(cuts, deadline: deadline)
            case .refused, .full:
                break
            }
            return action
        }
        switch action {
        case .accepted, .acceptedToJoin:
            if events.isActive { events.emit(.jobAccepted(key: job.key, id: job.id)) }
            if let work { carryOut(work) }
            return .accepted
        case .refused(let refusal):
            let (reason, message) = explain(refusal, of: job)
            shared.refuse(job, reason: reason, message: message, handler: handler, debug: config.debug)
            return .refused
        case .full:
            return .full
        }
    }

    /// Submits the jobs of `jobs` at `indices` under one lock: accepts each, or refuses it (its
    /// handler is answered), until the key is full.
    /// - Returns: how many were taken (accepted or refused), fewer than all when the key is at
    ///   `maxPending`, and how many of those were refused.
    @inlinable func submit(_ jobs: [Job<Payload>], at indices: ArraySlice<Int>, handler: Handler) -> (taken: Int, refused: Int) {
        let reportsAccepted = events.isActive
        var refused: [(index: Int, IntakeEngine.Refusal)] = []
        var work: Work?
        let taken = intake.withLock { intake -> Int in
            var cuts: [Cargo] = []
            var deadlines: [(window: UInt64, at: Duration)] = []
            var taken = 0
            // Whether the open window's last handler is `handler` already: then the next job
            // extends its run, with nothing compared or copied.
            var handlerIsLast = false
            for index in indices {
                // Fields are read through the array: see `match`.
                let size = payloadSize?(jobs[index].payload) ?? 0
                let action = intake.engine.submit(jobs[index].identity, size: size)
                switch action {
                case .full:
                    break
                case .refused(let refusal):
                    refused.append((index, refusal))
                case .accepted:
                    intake.jobs.append(Job(copying: jobs[index]))
                    if handlerIsLast { intake.handlers.appendSameAsLast() } else { intake.handlers.append(handler) }
                    handlerIsLast = true
                case .acceptedToJoin(let slot):
                    let effects = intake.engine.join(slot, size: size, now: { now })
                    if let deadline = intake.join(jobs[index], handler: handler, effects, cutting: &cuts) { deadlines.append(deadline) }
                    handlerIsLast = effects.cutAfter == nil
                }
                if case .full = action { break }
                taken += 1
            }
            if !cuts.isEmpty || !deadlines.isEmpty { work = handOver(cuts, deadlines: deadlines) }
            return taken
        }
        if reportsAccepted {
            let refusedIndices = Set(refused.map(\.index))
            events.emit(indices.prefix(taken).filter { !refusedIndices.contains($0) }.map { .jobAccepted(key: jobs[$0].key, id: jobs[$0].id) })
        }
        if let work { carryOut(work) }
        for (index, refusal) in refused {
            let (reason, message) = explain(refusal, of: jobs[index])
            shared.refuse(jobs[index], reason: reason, message: message, handler: handler, debug: config.debug)
        }
        return (taken, refused.count)
    }

    /// Under the intake's lock: hands the batches just cut to the flight, and says which window
    /// deadline to set.
    @inlinable func handOver(_ cuts: [Cargo], deadline: (window: UInt64, at: Duration)?) -> Work {
        handOver(cuts, deadlines: deadline.map { [$0] } ?? [])
    }

    @inlinable func handOver(_ cuts: [Cargo], deadlines: [(window: UInt64, at: Duration)]) -> Work {
        let work = Work()
        work.windowDeadlines = deadlines
        guard !cuts.isEmpty else { return work }
        let now = now
        let reportsRetries = events.isActive
        flight.withLock { flight in
            for cargo in cuts { flight.accept(cargo, now: now, into: work, key: key, reportsRetries: reportsRetries) }
        }
        return work
    }

    @inlinable func explain(_ refusal: IntakeEngine.Refusal, of job: Job<Payload>) -> (FailureReason, String) {
        switch refusal {
        case .shuttingDown:
            (.shutdownBatch, "Batchman is shutting down; job \"\(job.id)\" was not accepted")
        case .duplicate:
            (.duplicate, "Job \"\(job.id)\" is already pending for key \"\(job.key)\"")
        case .tooLarge(let size, let limit):
            (.error, "payload is \(size) bytes, larger than maxBatchBytes (\(limit)) for key \"\(key)\"")
        }
    }

    // MARK: - Looking

    /// The job with `identity` while it is held, with its status.
    @inlinable func job(_ identity: JobIdentity) -> Job<Payload>? {
        intake.withLock { intake -> Job<Payload>? in
            guard let slot = intake.engine.lookUp(identity) else { return nil }
            if let position = intake.engine.openPosition(of: slot) { return intake.jobs[position] }
            return flight.withLock { $0.job(inSlot: slot) }
        }
    }

    @inlinable var statistics: BatcherStatistics {
        let (accepted, held) = intake.withLock { ($0.engine.accepted, $0.engine.held) }
        var statistics = flight.withLock { $0.engine.statistics }
        statistics.accepted = accepted
        statistics.pending = held
        return statistics
    }

    // MARK: - Events from outside

    @inlinable func deadlineReached(_ deadline: BatcherDeadline) {
        let now = now
        let reportsRetries = events.isActive
        let work = Work()
        switch deadline {
        case .window(let number):
            intake.withLock { intake in
                guard let cut = intake.engine.deadlineReached(window: number) else { return }
                let cargo = intake.take(cut)
                flight.withLock { $0.accept(cargo, now: now, into: work, key: key, reportsRetries: reportsRetries) }
            }
        default:
            flight.withLock { flight in
                var attempts: [Job<Payload>] = []
                if case .timeout(let batchId) = deadline { attempts = flight.cargo[batchId]?.jobs ?? [] }
                let effects = flight.engine.deadlineReached(deadline, now: now, attempts: { attempts[$0].attempt })
                flight.collect(effects, into: work, key: key, reportsRetries: reportsRetries)
            }
        }
        carryOut(work)
    }

    /// Starts none of the key's batches for `duration` (see ``FlightEngine/pause(until:now:)``).
    @inlinable func pause(for duration: Duration) {
        let now = now
        let reportsRetries = events.isActive
        let work = Work()
        flight.withLock { flight in
            flight.collect(flight.engine.pause(until: now + max(.zero, duration), now: now), into: work, key: key, reportsRetries: reportsRetries)
        }
        carryOut(work)
    }

    /// Refuses new jobs and calls `onDrained` once every accepted job has its result.
    @inlinable func drain(onDrained: @escaping @Sendable () -> Void) {
        let now = now
        let reportsRetries = events.isActive
        let work = Work()
        intake.withLock { intake in
            guard let cut = intake.engine.drain() else { return }
            let cargo = intake.take(cut)
            flight.withLock { $0.accept(cargo, now: now, into: work, key: key, reportsRetries: reportsRetries) }
        }
        flight.withLock { flight in
            flight.drainWaiters.append(onDrained)
            flight.collect(flight.engine.drain(), into: work, key: key, reportsRetries: reportsRetries)
        }
        carryOut(work)
    }

    /// Fails every job still held with `shutdown_batch` and `message`.
    @inlinable func abandon(_ message: String) {
        let work = Work()
        intake.withLock { intake in
            let abandoned = intake.engine.abandon()
            guard !abandoned.isEmpty else { return }
            let cargo = intake.take(IntakeEngine.Cut(id: 0, reason: .shutdown, slots: abandoned))
            let delivery = Delivery(cargo: cargo, batchId: nil, ran: false, fates: .all(.failed(.shutdownBatch, message, fromOutcome: false)))
            work.abandonedFromIntake = abandoned.count
            flight.withLock { flight in
                flight.collect(flight.engine.abandoned(abandoned.count), into: work, key: key, reportsRetries: false, adding: [delivery])
            }
        }
        flight.withLock { flight in
            flight.timeoutHandlers = [:]  // the running calls' outcomes are dropped; their timeouts no longer matter
            flight.collect(flight.engine.abandon(reason: message), into: work, key: key, reportsRetries: false, abandonMessage: message)
        }
        carryOut(work)
    }
}
