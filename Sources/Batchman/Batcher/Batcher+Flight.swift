import FoundationEssentials
import Synchronization

extension Batcher {
    /// The settling half: the flight engine, and what it must not see (each batch's cargo, the
    /// jobs awaiting a retry, drain waiters, what to run when a call overruns its timeout).
    @usableFromInline struct FlightState: Sendable {
        @usableFromInline var engine: FlightEngine
        /// Batches from their cut until their jobs are settled, by batch id.
        @usableFromInline var cargo: [UInt64: Cargo] = [:]
        /// Jobs awaiting a retry, by the token the engine gave them.
        @usableFromInline var retrying: [UInt64: [Retry]] = [:]
        @usableFromInline var drainWaiters: [@Sendable () -> Void] = []
        /// By batch: what to run if its call overruns its timeout (``Batch/beginCall(onTimeout:)``).
        @usableFromInline var timeoutHandlers: [UInt64: @Sendable () -> Void] = [:]
        /// Results settled while earlier ones of the key were still going out, by delivery
        /// token: handed over in turn (see ``FlightEngine/Effects/handOver``).
        @usableFromInline var waitingDeliveries: [UInt64: [Delivery]] = [:]

        @inlinable init(engine: FlightEngine) {
            self.engine = engine
        }

        /// Once the engine is idle: lets go of the emptied collections' storage, as the engine
        /// does of its own (an idle key costs its counters, not what it once held).
        @inlinable mutating func shedStorageIfIdle() {
            guard engine.isIdle, cargo.isEmpty, retrying.isEmpty, timeoutHandlers.isEmpty, waitingDeliveries.isEmpty else { return }
            cargo = [:]
            retrying = [:]
            timeoutHandlers = [:]
            waitingDeliveries = [:]
        }

        /// Takes a batch the intake cut.
        @inlinable mutating func accept(_ cargo: Cargo, now: Duration, into work: Work, key: String, reportsRetries: Bool) {
            self.cargo[cargo.id] = cargo
            collect(engine.accept(batch: cargo.id, reason: cargo.reason, count: cargo.jobs.count, now: now), into: work, key: key,
                    reportsRetries: reportsRetries)
        }

        /// Carries `effects` over to the cargo, under the lock: batches to start get their jobs,
        /// settled jobs leave (retried ones wait under their token), held retries become a
        /// batch, and what needs no lock is noted in `work` for later. `outcomes` are the
        /// processor's for batch `outcomesOf`; `adding` are results Batchman decided elsewhere
        /// (the intake's abandoned jobs) that go out with this event's.
        @inlinable mutating func collect(
            _ effects: FlightEngine.Effects, into work: Work, key: String, reportsRetries: Bool, abandonMessage: String = "",
            outcomes: MatchedOutcomes = .none, outcomesOf outcomesBatch: UInt64? = nil, adding added: [Delivery] = []
        ) {
            var deliveries = added
            for resent in effects.resent {
                let retries = retrying.removeValue(forKey: resent.token) ?? []
                var handlers = Handlers()
                for retry in retries { handlers.append(retry.handler) }
                cargo[resent.batchId] = Cargo(id: resent.batchId, jobs: retries.map(\.job), handlers: handlers, slots: retries.map(\.slot),
                                              reason: .retry)
            }
            for settled in effects.settled {
                guard let settledCargo = cargo.removeValue(forKey: settled.batchId) else { continue }
                if case .each(let fates) = settled.fates {
                    for (position, fate) in fates.enumerated() {
                        guard case .retried(let attempt, let delay, let token) = fate else {
                            work.release.append(settledCargo.slots[position])
                            continue
                        }
                        var job = settledCargo.jobs[position]
                        job.attempt = attempt
                        retrying[token, default: []].append(Retry(job: job, handler: settledCargo.handlers.handler(at: position), slot: settledCargo.slots[position]))
                        if reportsRetries { work.retried.append((job, delay)) }
                    }
                } else {
                    work.release.append(contentsOf: settledCargo.slots)
                }
                var delivery = Delivery(cargo: settledCargo, batchId: settled.batchId, ran: settled.ran, fates: settled.fates)
                if settled.ran, settled.batchId == outcomesBatch { delivery.outcomes = outcomes }
                deliveries.append(delivery)
            }
            for token in effects.abandonedRetries {
                let retries = retrying.removeValue(forKey: token) ?? []
                var handlers = Handlers()
                for retry in retries { handlers.append(retry.handler) }
                work.release.append(contentsOf: retries.map(\.slot))
                let abandoned = Cargo(id: 0, jobs: retries.map(\.job), handlers: handlers, slots: retries.map(\.slot), reason: .shutdown)
                deliveries.append(Delivery(cargo: abandoned, batchId: nil, ran: false,
                                           fates: .all(.failed(.shutdownBatch, abandonMessage, fromOutcome: false))))
            }
            work.rejoin += effects.rejoin
            for id in effects.started {
                guard let started = cargo[id] else { continue }
                work.batches.append(Batch(id: id, key: key, jobs: started.jobs, reason: started.reason))
            }
            for batch in effects.timedOut {
                if let handler = timeoutHandlers.removeValue(forKey: batch.id) { work.timeoutHandlers.append(handler) }
            }
            // A key's results go out one batch at a time, in the order they settled.
            if let token = effects.delivery, effects.handOver != token { waitingDeliveries[token] = deliveries }
            if let token = effects.handOver {
                precondition(work.handOver == nil, "one delivery at a time")
                work.handOver = token
                work.deliveries = effects.delivery == token ? deliveries : waitingDeliveries.removeValue(forKey: token) ?? []
            }
            if effects.drained {
                work.drainWaiters += drainWaiters
                drainWaiters = []
            }
            // The delivery was dealt with above, event by event: one `work` may gather several
            // events that each settle jobs (an abandon settles the intake's window, then the
            // flight's batches), and what it carries out later is the rest.
            var rest = effects
            rest.delivery = nil
            rest.handOver = nil
            work.effects.append(rest)
        }

        /// The job in `slot`, wherever it waits or runs.
        @inlinable func job(inSlot slot: Int) -> Job<Payload>? {
            for (id, batch) in cargo {
                guard let position = batch.slots.firstIndex(of: slot) else { continue }
                var job = batch.jobs[position]
                job.status = engine.isRunning(id) ? .processing : .submitted
                return job
            }
            for retries in retrying.values {
                if let retry = retries.first(where: { $0.slot == slot }) { return retry.job }
            }
            return nil
        }
    }

    /// Results to hand over: the jobs of a settled batch (or of jobs given up on) and their fates.
    @usableFromInline struct Delivery: Sendable {
        @usableFromInline let cargo: Cargo
        /// The batch that settled them; nil for jobs that never reached a batch of their own.
        @usableFromInline let batchId: UInt64?
        /// Whether the processor was called for them (they count that attempt).
        @usableFromInline let ran: Bool
        @usableFromInline let fates: FlightEngine.Fates
        /// The processor's outcomes, by position, when the results come from its call.
        @usableFromInline var outcomes: MatchedOutcomes = .none

        @inlinable init(cargo: Cargo, batchId: UInt64?, ran: Bool, fates: FlightEngine.Fates) {
            self.cargo = cargo
            self.batchId = batchId
            self.ran = ran
            self.fates = fates
        }

        /// The result of the job at `position`, which met `fate` (not a retry). Built in place,
        /// never through an optional: see ``Batchman/Attempt``.
        @inlinable func result(at position: Int, _ fate: FlightEngine.Fate, wallTime: Double) -> JobResult<Payload, Output> {
            // The job's fields are read through the array, never by taking the job out whole
            // (see `Job.init(copying:)`).
            switch fate {
            case .completed:
                return JobResult(fieldsOf: cargo.jobs, at: position, status: .completed, result: outcomes.output(at: position), errorReason: nil,
                                 errorMessage: nil, batchId: batchId, attempts: cargo.jobs[position].attempt,
                                 completedAtSeconds: outcomes.completedAtSeconds(at: position) ?? wallTime)
            case .failed(let reason, let message, let fromOutcome):
                let completedAt = fromOutcome ? outcomes.completedAtSeconds(at: position) ?? wallTime : wallTime
                return JobResult(fieldsOf: cargo.jobs, at: position, status: .failed, result: nil, errorReason: reason, errorMessage: message,
                                 batchId: ran ? batchId : nil, attempts: ran ? cargo.jobs[position].attempt : cargo.jobs[position].attempt - 1,
                                 completedAtSeconds: completedAt)
            case .retried:
                preconditionFailure("a retried job has no result yet")
            }
        }
    }

    /// What is left to do once the locks are released. A class: most submits make none, and an
    /// optional reference costs nothing where a large optional struct is initialised, copied and
    /// destroyed through its value witnesses on every submit.
    @usableFromInline final class Work {
        @usableFromInline var effects = FlightEngine.Effects()
        /// Window deadlines the intake asked for.
        @usableFromInline var windowDeadlines: [(window: UInt64, at: Duration)] = []
        @usableFromInline var batches: [Batch<Payload>] = []
        /// Results to hand over now, and their delivery token.
        @usableFromInline var deliveries: [Delivery] = []
        @usableFromInline var handOver: UInt64?
        /// Slots of settled jobs, to give back to the intake before their results go out.
        @usableFromInline var release: [Int] = []
        /// Retry tokens whose jobs go back to the intake's open window.
        @usableFromInline var rejoin: [UInt64] = []
        @usableFromInline var retried: [(job: Job<Payload>, delay: Duration)] = []
        @usableFromInline var drainWaiters: [@Sendable () -> Void] = []
        /// What the processor asked to be told of calls that overran their timeout.
        @usableFromInline var timeoutHandlers: [@Sendable () -> Void] = []
        /// Jobs of the open window given up on (they hold no room any more).
        @usableFromInline var abandonedFromIntake = 0

        @inlinable init() {}
    }

    /// Carries out `work` outside the flight's lock: slots back to the intake (and retried jobs
    /// into its open window), then deadlines, events and logs, room for producers, batches to
    /// start, results to hand over, and drain waiters to resume.
    @inlinable func carryOut(_ work: Work) {
        if !work.release.isEmpty || !work.rejoin.isEmpty { returnToIntake(work) }
        let effects = work.effects
        // Scheduled through a closure formed here, so that the deadline runs specialised code (see FlushCallback).
        let needsTarget = !effects.deadlines.isEmpty || !work.windowDeadlines.isEmpty
        let target = needsTarget ? FlushCallback { [self] in deadlineReached($0) } : nil
        if let target {
            for deadline in work.windowDeadlines { scheduler.schedule(target, .window(deadline.window), at: deadline.at) }
        }
        effects.announce(for: target, key: key, config: config, scheduler: scheduler, shared: shared)
        if work.abandonedFromIntake > 0 { shared.released(work.abandonedFromIntake) }
        for handler in work.timeoutHandlers { handler() }
        if !work.retried.isEmpty {
            events.emit(work.retried.map { .jobRetried(key: $0.job.key, id: $0.job.id, attempt: $0.job.attempt, delay: $0.delay) })
        }
        for batch in work.batches { start(batch) }
        if let token = work.handOver { deliver(work.deliveries, token: token) }
        for waiter in work.drainWaiters { waiter() }
    }

    /// Gives settled slots back to the intake, and sends retried jobs back into its open window
    /// (taken from the flight under both locks, so that they are never in neither).
    @inlinable func returnToIntake(_ work: Work) {
        let now = now
        let reportsRetries = events.isActive
        let release = work.release
        let rejoin = work.rejoin
        work.release = []
        work.rejoin = []
        intake.withLock { intake in
            if !release.isEmpty { intake.engine.release(release) }
            guard !rejoin.isEmpty else { return }
            flight.withLock { flight in
                let retries = rejoin.flatMap { flight.retrying.removeValue(forKey: $0) ?? [] }
                var cuts: [Cargo] = []
                for retry in retries {
                    let effects = intake.engine.join(retry.slot, size: payloadSize?(retry.job.payload) ?? 0, now: { now })
                    if let deadline = intake.join(retry.job, handler: retry.handler, effects, cutting: &cuts) { work.windowDeadlines.append(deadline) }
                }
                for cut in cuts { flight.accept(cut, now: now, into: work, key: key, reportsRetries: reportsRetries) }
                flight.collect(flight.engine.rejoined(retries.count), into: work, key: key, reportsRetries: reportsRetries)
            }
        }
    }

    /// Hands `batch` to the processor: a queueing one directly (it calls back when done), any
    /// other in a task of its own.
    @inlinable func start(_ batch: Batch<Payload>) {
        guard processorQueues else {
            Task { [self] in
                let outcome: Outcomes
                do {
                    outcome = .success(try await processor.process(batch))
                } catch {
                    outcome = .failure(error)
                }
                finish(batch, outcome)
            }
            return
        }
        var queued = batch
        queued.callStarter = { [self, id = batch.id] onTimeout in callStarted(id, onTimeout: onTimeout) }
        _ = processor.enqueueIfQueueing(queued, completion: { [self, batch] outcome in finish(batch, outcome) })
    }

    /// The processor's call for batch `batchId` begins: starts its timeout, which runs
    /// `onTimeout` if it expires first. False if the batch was given up on meanwhile, and must
    /// not be processed.
    @inlinable func callStarted(_ batchId: UInt64, onTimeout: (@Sendable () -> Void)?) -> Bool {
        let now = now
        let work = Work()
        let proceed = flight.withLock { flight -> Bool in
            guard case .proceed(let effects) = flight.engine.callStarted(batchId, now: now) else { return false }
            if let onTimeout, config.timeout != nil { flight.timeoutHandlers[batchId] = onTimeout }
            work.effects = effects
            return true
        }
        if proceed { carryOut(work) }
        return proceed
    }

    /// The processor's call for `batch` returned: settles its jobs (the next batch starts
    /// before their results are handed over, so a slow callback never holds up the processor).
    @inlinable func finish(_ batch: Batch<Payload>, _ outcome: Outcomes) {
        let verdicts: FlightEngine.Verdicts
        let matched: MatchedOutcomes
        switch outcome {
        case .success(let outcomes):
            var warnings: [String] = []
            (verdicts, matched) = match(outcomes, to: batch, warnings: &warnings)
            for warning in warnings { logger.log(.warning, warning) }
        case .failure(let error):
            verdicts = .each([FlightEngine.Verdict](repeating: .transient("\(error)", .error), count: batch.jobs.count))
            matched = .none
        }
        let now = now
        let reportsRetries = events.isActive
        let work = Work()
        flight.withLock { flight in
            if !flight.timeoutHandlers.isEmpty { flight.timeoutHandlers[batch.id] = nil }
            let effects = flight.engine.complete(batch.id, verdicts: verdicts, attempts: { batch.jobs[$0].attempt }, now: now)
            flight.collect(effects, into: work, key: key, reportsRetries: reportsRetries, outcomes: matched, outcomesOf: batch.id)
        }
        carryOut(work)
    }

    /// Hands over the results of `deliveries` (delivery `token`), then the key's next results
    /// in line, if any settled meanwhile: a key's results go out one batch at a time, in the
    /// order they settled, from whichever thread is handing them over. Async callbacks run in a
    /// task, which goes on with the next in line when they are done.
    @inlinable func deliver(_ deliveries: [Delivery], token: UInt64) {
        var deliveries = deliveries
        var token = token
        while true {
            let asynchronous = handOver(deliveries)
            if !asynchronous.isEmpty {
                Task { [self, token] in
                    for (handler, result) in asynchronous { await handler.deliver(result, logger: logger) }
                    carryOut(deliveryFinished(token))
                }
                return
            }
            let next = deliveryFinished(token)
            for waiter in next.drainWaiters { waiter() }
            guard let nextToken = next.handOver else { return }
            deliveries = next.deliveries
            token = nextToken
        }
    }

    /// Builds and hands over the results of `deliveries`: callbacks run on this thread, each
    /// result built as it is handed over, and a sink gets all of its results at once. Returns
    /// the results for async callbacks, which the caller hands over in a task.
    @inlinable func handOver(_ deliveries: [Delivery]) -> [(Handler, JobResult<Payload, Output>)] {
        let wallTime = Date().timeIntervalSince1970
        let reports = events.isActive || config.debug
        var sinks: [(sink: any ResultSink<Payload, Output>, results: [JobResult<Payload, Output>])] = []
        var asynchronous: [(Handler, JobResult<Payload, Output>)] = []
        for delivery in deliveries {
            var reported: [JobResult<Payload, Output>] = []
            var start = 0
            for run in delivery.cargo.handlers.runs {
                defer { start = run.end }
                switch run.handler {
                case .sink(let sink):
                    var results: [JobResult<Payload, Output>] = []
                    results.reserveCapacity(run.end - start)
                    for position in start..<run.end {
                        let fate = delivery.fates[position]
                        if case .retried = fate { continue }
                        results.append(delivery.result(at: position, fate, wallTime: wallTime))
                    }
                    if reports { reported += results }
                    // A batch reports to one sink or a few: a scan beats hashing.
                    if let index = sinks.firstIndex(where: { $0.sink === sink }) {
                        sinks[index].results += results
                    } else {
                        sinks.append((sink, results))
                    }
                case .sync(let callback):
                    for position in start..<run.end {
                        let fate = delivery.fates[position]
                        if case .retried = fate { continue }
                        let result = delivery.result(at: position, fate, wallTime: wallTime)
                        if reports { reported.append(result) }
                        do {
                            try callback(result)
                        } catch {
                            Handler.logFailure(of: result, error, logger: logger)
                        }
                    }
                case .continuation(let continuation):
                    // One job a run: a continuation is resumed once.
                    let fate = delivery.fates[start]
                    if case .retried = fate { continue }
                    let result = delivery.result(at: start, fate, wallTime: wallTime)
                    if reports { reported.append(result) }
                    continuation.resume(returning: result)
                case .async:
                    for position in start..<run.end {
                        let fate = delivery.fates[position]
                        if case .retried = fate { continue }
                        let result = delivery.result(at: position, fate, wallTime: wallTime)
                        if reports { reported.append(result) }
                        asynchronous.append((run.handler, result))
                    }
                }
            }
            if reports { report(reported, of: delivery) }
        }
        for (sink, results) in sinks where !results.isEmpty { sink.receive(results) }
        return asynchronous
    }

    /// The results of delivery `token` are out: the next in line, if any, to hand over, and drain
    /// waiters to resume if the key is done.
    @inlinable func deliveryFinished(_ token: UInt64) -> Work {
        let work = Work()
        let reportsRetries = events.isActive
        flight.withLock { flight in
            flight.collect(flight.engine.deliveryFinished(token), into: work, key: key, reportsRetries: reportsRetries)
            flight.shedStorageIfIdle()
        }
        return work
    }

    @inlinable func report(_ results: [JobResult<Payload, Output>], of delivery: Delivery) {
        let batchId = delivery.ran ? delivery.batchId : nil
        if config.debug, let batchId {
            let failed = results.count { $0.status == .failed }
            logger.log(.debug, "key \"\(key)\": batch \(batchId) completed, \(failed) of \(delivery.cargo.jobs.count) jobs failed")
        }
        guard events.isActive else { return }
        var batchEvents: [BatchmanEvent] = []
        if let batchId {
            let failed = results.count { $0.status == .failed }
            batchEvents.append(.batchCompleted(key: key, batchId: batchId, size: delivery.cargo.jobs.count, failed: failed))
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
}
