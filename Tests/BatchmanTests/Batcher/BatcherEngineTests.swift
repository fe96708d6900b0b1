@testable import Batchman
import Testing

/// The batcher's engine, transition by transition: each event's effects compared with `==`.
@Suite struct BatcherEngineTests {
    typealias Engine = BatcherEngine
    typealias Effects = BatcherEngine.Effects

    func engine(_ config: BatcherConfig, reportsCallStart: Bool = false, jitter: @escaping Engine.Jitter = { $0 }) -> Engine {
        Engine(key: "k", policy: KeyPolicy(config: config, batchIds: BatchIdGenerator(), jitter: jitter), reportsCallStart: reportsCallStart)
    }

    func identity(_ id: String) -> JobIdentity { JobIdentity(key: "k", id: id) }

    /// Submits `id` and returns the slot and effects of its acceptance.
    func accept(_ id: String, size: Int = 1, into engine: inout Engine, at now: Duration = .zero,
                sourceLocation: SourceLocation = #_sourceLocation) -> (slot: Int, effects: Effects) {
        guard case .accepted(let slot, let effects) = engine.submit(identity(id), size: size, now: { now }) else {
            Issue.record("job \(id) was not accepted", sourceLocation: sourceLocation)
            return (-1, Effects())
        }
        return (slot, effects ?? Effects())
    }

    func effects(_ build: (inout Effects) -> Void) -> Effects {
        var effects = Effects()
        build(&effects)
        return effects
    }

    @Test func theFirstJobOfAWindowSetsItsDeadlineAndTheNextOnesDoNothing() {
        var engine = engine(BatcherConfig(frequency: .seconds(5), maxBatchSize: 4))

        let first = accept("1", into: &engine, at: .seconds(2))
        let second = accept("2", into: &engine, at: .seconds(3))

        #expect(first.effects == effects { $0.deadlines = [.init(deadline: .window(1), at: .seconds(7))] })
        #expect(second.effects == Effects())
        #expect(engine.submit(identity("3"), size: 1, now: { .zero }) == .accepted(slot: 2, nil), "no effects to copy around")
        #expect(first.slot != second.slot)
    }

    @Test func theJobThatFillsABatchCutsAndStartsIt() {
        var engine = engine(BatcherConfig(maxBatchSize: 2, timeout: .seconds(1)))
        let first = accept("1", into: &engine)

        let second = accept("2", into: &engine, at: .seconds(4))

        #expect(second.effects == effects {
            $0.flushed = [.init(id: 1, size: 2, reason: .size)]
            $0.started = [.init(id: 1, reason: .size, slots: [first.slot, second.slot])]
            $0.deadlines = [.init(deadline: .timeout(1), at: .seconds(5))]
        })
        #expect(engine.lookUp(identity("1"))?.status == .processing)
    }

    @Test func refusesADuplicateWhileTheJobIsHeldAndTakesItAgainOnceItIsDone() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        let first = accept("1", into: &engine)

        #expect(engine.submit(identity("1"), size: 1, now: { .zero }) == .refused(.duplicate))

        let done = engine.complete(1, verdicts: .allCompleted, now: .zero)
        #expect(done.settled == [.init(slot: first.slot, batchId: 1, attempts: 1, position: 0, outcome: .completed)])
        #expect(done.released == 1)
        #expect(engine.lookUp(identity("1")) == nil)
        let again = accept("1", into: &engine)
        #expect(again.slot == first.slot, "a freed slot is used again")
    }

    @Test func saysFullAtMaxPendingAndRefusesATooLargePayload() {
        var engine = engine(BatcherConfig(maxBatchBytes: 10, maxPending: 1))
        _ = accept("1", into: &engine)

        #expect(engine.submit(identity("2"), size: 1, now: { .zero }) == .full)
        #expect(engine.submit(identity("3"), size: 11, now: { .zero }) == .refused(.tooLarge(size: 11, limit: 10)))
    }

    @Test func cutsByBytesBeforeTheJobThatWouldOverflow() {
        var engine = engine(BatcherConfig(maxBatchSize: 10, maxBatchBytes: 10))
        let first = accept("1", size: 6, into: &engine)

        let second = accept("2", size: 6, into: &engine)

        #expect(second.effects.flushed == [.init(id: 1, size: 1, reason: .bytes)])
        #expect(second.effects.started == [.init(id: 1, reason: .bytes, slots: [first.slot])])
        #expect(second.effects.deadlines.map(\.deadline) == [.window(2)], "the second job opens the next window")
    }

    @Test func aStaleWindowDeadlineDoesNothingAndACurrentOneCutsByTime() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        _ = accept("1", into: &engine)  // window 1 cut by size at once
        #expect(engine.deadlineReached(.window(1), now: .seconds(5)) == Effects())

        var timed = self.engine(BatcherConfig(maxBatchSize: 5))
        let job = accept("1", into: &timed)
        let fired = timed.deadlineReached(.window(1), now: .seconds(5))
        #expect(fired.flushed == [.init(id: 1, size: 1, reason: .time)])
        #expect(fired.started == [.init(id: 1, reason: .time, slots: [job.slot])])
    }

    @Test func aTransientVerdictRetriesAfterItsJitteredBackoffThenRunsOutOfAttempts() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .seconds(1)), jitter: { $0 / 2 })
        let job = accept("1", into: &engine)

        let failed = engine.complete(1, verdicts: .each([.transient("busy", .error)]), now: .seconds(10))
        #expect(failed == effects {
            $0.retried = [.init(slot: job.slot, attempt: 2, delay: .milliseconds(500))]
            $0.deadlines = [.init(deadline: .retry(1), at: .milliseconds(10_500))]
        })

        let due = engine.deadlineReached(.retry(1), now: .milliseconds(10_500))
        #expect(due.started == [.init(id: 2, reason: .size, slots: [job.slot])])
        #expect(engine.attempt(ofSlot: job.slot) == 2)

        let exhausted = engine.complete(2, verdicts: .each([.transient("busy", .error)]), now: .seconds(11))
        #expect(exhausted.settled == [.init(slot: job.slot, batchId: 2, attempts: 2, position: nil, outcome: .failed(.maxRetry, "busy"))])
        #expect(exhausted.delivery != nil)
    }

    @Test func aCrashKeepsItsReasonWhenAttemptsRunOut() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .zero, maxBackoff: .zero))
        _ = accept("1", into: &engine)
        _ = engine.complete(1, verdicts: .each([.transient("crashed", .crashed)]), now: .zero)

        let final = engine.complete(2, verdicts: .each([.transient("crashed", .crashed)]), now: .zero)

        #expect(final.settled.map(\.outcome) == [.failed(.crashed, "crashed")])
    }

    @Test func startsTheTimeoutWhenTheCallBeginsNotWhenTheBatchIsHandedOver() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, timeout: .seconds(1)), reportsCallStart: true)
        let handedOver = accept("1", into: &engine)
        #expect(handedOver.effects.deadlines.isEmpty, "no timeout yet: the call has not begun")

        let begun = engine.callStarted(1, now: .seconds(30))  // the batch waited 30 s for a worker

        #expect(begun == .proceed(effects { $0.deadlines = [.init(deadline: .timeout(1), at: .seconds(31))] }))
        #expect(engine.callStarted(1, now: .seconds(31)) == .skip, "a call begins once")
    }

    @Test func aTimeoutSettlesTheBatchAndItsLateOutcomeIsDropped() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, timeout: .seconds(1)))
        let job = accept("1", into: &engine)
        let next = accept("2", into: &engine)
        #expect(next.effects.started.isEmpty, "one batch at a time: the second waits")

        let overran = engine.deadlineReached(.timeout(1), now: .seconds(1))
        #expect(overran.timedOut == [.init(id: 1, size: 1, reason: .time)])
        #expect(overran.settled.map(\.slot) == [job.slot])
        #expect(overran.started.isEmpty, "the key waits for the overrunning call to return")

        let late = engine.complete(1, verdicts: .allCompleted, now: .seconds(2))
        #expect(late.settled.isEmpty, "the late outcome is dropped")
        #expect(late.started == [.init(id: 2, reason: .size, slots: [next.slot])])
    }

    @Test func refusesToStartABatchAbandonedWhileItWaited() {
        var engine = engine(BatcherConfig(maxBatchSize: 1), reportsCallStart: true)
        let job = accept("1", into: &engine)

        let abandoned = engine.abandon(reason: "shutdown timed out", now: .zero)

        #expect(abandoned.settled == [.init(slot: job.slot, batchId: 1, attempts: 1, position: nil,
                                             outcome: .failed(.shutdownBatch, "shutdown timed out"))],
                "the job keeps the batch it was in")
        #expect(engine.callStarted(1, now: .zero) == .skip, "an abandoned batch must never be processed")
        #expect(engine.submit(identity("2"), size: 1, now: { .zero }) == .refused(.shuttingDown))
    }

    @Test func drainCutsTheOpenWindowAndEndsOnceResultsAreHandedOver() {
        var engine = engine(BatcherConfig(maxBatchSize: 5))
        let job = accept("1", into: &engine)

        let draining = engine.drain(now: .zero)
        #expect(draining.flushed == [.init(id: 1, size: 1, reason: .shutdown)])
        #expect(draining.started == [.init(id: 1, reason: .shutdown, slots: [job.slot])])
        #expect(!draining.drained)
        #expect(engine.phase == .draining)

        let done = engine.complete(1, verdicts: .allCompleted, now: .zero)
        #expect(!done.drained, "results not handed over yet")
        let handedOver = engine.deliveryFinished(done.delivery!, now: .zero)
        #expect(handedOver == effects {
            $0.drained = true
            $0.releasedStorage = true
        })
        #expect(engine.phase == .drained)
        #expect(engine.drain(now: .zero) == effects { $0.drained = true }, "a second drain ends at once")
    }

    /// An idle key keeps no storage for jobs: once the last job's result is handed over, the
    /// engine lets go of its slots, and the next job starts again at slot 0.
    @Test func aKeyThatHoldsNoJobLetsGoOfItsStorage() {
        var engine = engine(BatcherConfig(maxBatchSize: 2))
        _ = accept("1", into: &engine)
        let second = accept("2", into: &engine)
        #expect(second.slot == 1)
        let done = engine.complete(1, verdicts: .allCompleted, now: .zero)
        #expect(!done.releasedStorage, "results not handed over yet")
        #expect(engine.deliveryFinished(done.delivery!, now: .zero).releasedStorage)

        let again = accept("1", into: &engine)
        #expect(again.slot == 0, "storage starts afresh")
        #expect(engine.lookUp(identity("1"))?.slot == 0)
        #expect(engine.lookUp(identity("2")) == nil)
        #expect(engine.submit(identity("1"), size: 1, now: { .zero }) == .refused(.duplicate), "the fresh index still finds held jobs")
    }

    @Test func drainKeepsTheBackoffOfJobsWaitingToRetry() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 3, initialBackoff: .seconds(60), maxBackoff: .seconds(60)))
        let job = accept("1", into: &engine)
        let failed = engine.complete(1, verdicts: .each([.transient("busy", .error)]), now: .zero)
        #expect(failed.deadlines == [.init(deadline: .retry(1), at: .seconds(60))])

        let draining = engine.drain(now: .seconds(1))
        #expect(draining.started.isEmpty && !draining.drained, "the backend is still down a second later")

        let retried = engine.deadlineReached(.retry(1), now: .seconds(60))
        #expect(retried.started == [.init(id: 2, reason: .size, slots: [job.slot])])
    }

    @Test func strictOrderingHoldsLaterBatchesUntilRetriedJobsRanAlone() {
        var engine = engine(BatcherConfig(maxBatchSize: 2, maxAttempts: 2, initialBackoff: .seconds(5), maxBackoff: .seconds(5), ordering: .strict))
        let a = accept("a", into: &engine), b = accept("b", into: &engine)
        let c = accept("c", into: &engine), d = accept("d", into: &engine)
        #expect(d.effects.started.isEmpty, "batch 2 waits for batch 1 (maxInFlight 1)")

        let settled = engine.complete(1, verdicts: .each([.transient("busy", .error), .completed]), now: .seconds(1))
        #expect(settled.started.isEmpty, "nothing later starts while a's retry waits out its backoff")
        #expect(settled.deadlines == [.init(deadline: .retry(1), at: .seconds(6))])
        #expect(settled.retried == [.init(slot: a.slot, attempt: 2, delay: .seconds(5))])
        #expect(engine.lookUp(identity("c"))?.status == .submitted)

        let due = engine.deadlineReached(.retry(1), now: .seconds(6))
        #expect(due.flushed == [.init(id: 3, size: 1, reason: .retry)])
        #expect(due.started == [.init(id: 3, reason: .retry, slots: [a.slot])], "a goes first, alone")
        #expect(engine.lookUp(identity("a"))?.status == .processing)

        let after = engine.complete(3, verdicts: .allCompleted, now: .seconds(7))
        #expect(after.started == [.init(id: 2, reason: .size, slots: [c.slot, d.slot])])
        _ = b
    }

    @Test func isIdleAgainOnceTheResultsOfAnAbandonedDrainAreHandedOver() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        _ = accept("stuck", into: &engine)

        let abandoned = engine.abandon(reason: "shutdown timed out", now: .zero)
        #expect(abandoned.settled.map(\.outcome) == [.failed(.shutdownBatch, "shutdown timed out")])
        let handedOver = engine.deliveryFinished(abandoned.delivery!, now: .zero)

        #expect(handedOver.drained, "a drain after a timed-out one must not wait forever")
        #expect(engine.phase == .drained)
    }

    @Test func pacesBatchStartsByMinBatchInterval() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxInFlight: 3, minBatchInterval: .seconds(10)))
        _ = accept("1", into: &engine, at: .seconds(1))

        let paced = accept("2", into: &engine, at: .seconds(2))
        #expect(paced.effects.started.isEmpty)
        #expect(paced.effects.deadlines == [.init(deadline: .pacing, at: .seconds(11))])
        #expect(accept("3", into: &engine, at: .seconds(3)).effects.deadlines.isEmpty, "one pacing deadline at a time")

        let due = engine.deadlineReached(.pacing, now: .seconds(11))
        #expect(due.started.map(\.id) == [2])
        #expect(due.deadlines == [.init(deadline: .pacing, at: .seconds(21))])
    }
}
