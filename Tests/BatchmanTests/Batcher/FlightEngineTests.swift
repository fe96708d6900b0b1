@testable import Batchman
import Testing

/// The settling half of a batcher, transition by transition: each event's effects compared with `==`.
@Suite struct FlightEngineTests {
    typealias Engine = FlightEngine
    typealias Effects = FlightEngine.Effects

    func engine(_ config: BatcherConfig, reportsCallStart: Bool = false, jitter: @escaping Engine.Jitter = { $0 }) -> Engine {
        Engine(policy: KeyPolicy(config: config, batchIds: BatchIdGenerator(), jitter: jitter), reportsCallStart: reportsCallStart)
    }

    func effects(_ build: (inout Effects) -> Void) -> Effects {
        var effects = Effects()
        build(&effects)
        return effects
    }

    /// The intake's cut of batch `id` with `count` jobs.
    func cut(_ id: UInt64, count: Int = 1, reason: FlushReason = .size, into engine: inout Engine, at now: Duration = .zero) -> Effects {
        engine.accept(batch: id, reason: reason, count: count, now: now)
    }

    static func firstTry(_ position: Int) -> Int { 1 }

    @Test func aCutBatchStartsAtOnceWhenThereIsRoomWithItsTimeout() {
        var engine = engine(BatcherConfig(timeout: .seconds(1)))

        let started = cut(1, count: 2, into: &engine, at: .seconds(4))

        #expect(started == effects {
            $0.flushed = [.init(id: 1, size: 2, reason: .size)]
            $0.started = [1]
            $0.deadlines = [.init(deadline: .timeout(1), at: .seconds(5))]
        })
        #expect(engine.isRunning(1))
    }

    @Test func aSecondBatchWaitsForTheFirstAndStartsWhenItCompletes() {
        var engine = engine(BatcherConfig())
        _ = cut(1, into: &engine)

        #expect(cut(2, into: &engine).started.isEmpty, "one batch at a time (maxInFlight 1)")
        #expect(!engine.isRunning(2))

        let done = engine.complete(1, verdicts: .allCompleted, attempts: Self.firstTry, now: .zero)
        #expect(done == effects {
            $0.settled = [.init(batchId: 1, ran: true, fates: .all(.completed))]
            $0.started = [2]
            $0.released = 1
            $0.delivery = 1
            $0.handOver = 1
        })
        #expect(engine.statistics.completed == 1)
    }

    @Test func aTransientVerdictRetriesAfterItsJitteredBackoffThenRunsOutOfAttempts() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .seconds(1)), jitter: { $0 / 2 })
        _ = cut(1, into: &engine)

        let failed = engine.complete(1, verdicts: .each([.transient("busy", .error)]), attempts: Self.firstTry, now: .seconds(10))
        #expect(failed == effects {
            $0.settled = [.init(batchId: 1, ran: true, fates: .each([.retried(attempt: 2, delay: .milliseconds(500), token: 1)]))]
            $0.deadlines = [.init(deadline: .retry(1), at: .milliseconds(10_500))]
            $0.delivery = 1
            $0.handOver = 1
        })
        #expect(engine.statistics.retried == 1)
        _ = engine.deliveryFinished(failed.delivery!)

        let due = engine.deadlineReached(.retry(1), now: .milliseconds(10_500))
        #expect(due.rejoin == [1], "its job goes back to the intake's open window")
        #expect(!engine.drain().drained, "a drain waits for a job on its way back")
        #expect(engine.rejoined(1).drained, "and ends once it is back (the intake cuts it while draining)")

    }

    @Test func aJobOutOfAttemptsFailsWithMaxRetry() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .seconds(1)))
        _ = cut(2, into: &engine)

        let exhausted = engine.complete(2, verdicts: .each([.transient("busy", .error)]), attempts: { _ in 2 }, now: .seconds(11))
        #expect(exhausted.settled == [.init(batchId: 2, ran: true, fates: .each([.failed(.maxRetry, "busy", fromOutcome: false)]))])
        #expect(exhausted.released == 1)
    }

    @Test func aRetryWithNoBackoffGoesBackToTheIntakeAtOnce() {
        var engine = engine(BatcherConfig(maxAttempts: 3, initialBackoff: .zero, maxBackoff: .zero))
        _ = cut(1, count: 2, into: &engine)

        let settled = engine.complete(1, verdicts: .each([.completed, .transient("busy", .error)]), attempts: Self.firstTry, now: .zero)

        #expect(settled.rejoin == [1])
        #expect(settled.deadlines.isEmpty)
        #expect(settled.settled == [.init(batchId: 1, ran: true, fates: .each([.completed, .retried(attempt: 2, delay: .zero, token: 1)]))])
        #expect(settled.released == 1, "only the completed job leaves")
    }

    @Test func aCrashKeepsItsReasonWhenAttemptsRunOut() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .zero, maxBackoff: .zero))
        _ = cut(1, into: &engine)
        _ = engine.complete(1, verdicts: .each([.transient("crashed", .crashed)]), attempts: Self.firstTry, now: .zero)
        _ = engine.rejoined(1)
        _ = cut(2, into: &engine)

        let final = engine.complete(2, verdicts: .each([.transient("crashed", .crashed)]), attempts: { _ in 2 }, now: .zero)

        #expect(final.settled.map(\.fates) == [.each([.failed(.crashed, "crashed", fromOutcome: false)])])
    }

    @Test func startsTheTimeoutWhenTheCallBeginsNotWhenTheBatchIsHandedOver() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, timeout: .seconds(1)), reportsCallStart: true)
        let handedOver = cut(1, into: &engine)
        #expect(handedOver.deadlines.isEmpty, "no timeout yet: the call has not begun")

        let begun = engine.callStarted(1, now: .seconds(30))  // the batch waited 30 s for a worker

        #expect(begun == .proceed(effects { $0.deadlines = [.init(deadline: .timeout(1), at: .seconds(31))] }))
        #expect(engine.callStarted(1, now: .seconds(31)) == .skip, "a call begins once")
    }

    @Test func aTimeoutSettlesTheBatchAndItsLateOutcomeIsDropped() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, timeout: .seconds(1)))
        _ = cut(1, into: &engine)
        #expect(cut(2, into: &engine).started.isEmpty, "one batch at a time: the second waits")

        let overran = engine.deadlineReached(.timeout(1), now: .seconds(1))
        #expect(overran.timedOut == [.init(id: 1, size: 1, reason: .time)])
        #expect(overran.settled == [.init(batchId: 1, ran: true, fates: .each([.failed(.timeout, "batch 1 timed out after 1.0 seconds", fromOutcome: false)]))])
        #expect(overran.started.isEmpty, "the key waits for the overrunning call to return")

        let late = engine.complete(1, verdicts: .allCompleted, attempts: Self.firstTry, now: .seconds(2))
        #expect(late.settled.isEmpty, "the late outcome is dropped")
        #expect(late.started == [2])
    }

    @Test func aTimedOutJobIsRetriedOnTheAttemptItWasOn() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 3, initialBackoff: .seconds(1), timeout: .seconds(1)))
        _ = cut(1, into: &engine)

        let overran = engine.deadlineReached(.timeout(1), now: .seconds(1), attempts: { _ in 2 })

        #expect(overran.settled.map(\.fates) == [.each([.retried(attempt: 3, delay: .seconds(2), token: 1)])])
    }

    @Test func refusesToStartABatchAbandonedWhileItWaited() {
        var engine = engine(BatcherConfig(maxBatchSize: 1), reportsCallStart: true)
        _ = cut(1, into: &engine)
        _ = cut(2, into: &engine)

        let abandoned = engine.abandon(reason: "shutdown timed out")

        let failure = Engine.Fate.failed(.shutdownBatch, "shutdown timed out", fromOutcome: false)
        #expect(abandoned.settled == [.init(batchId: 1, ran: true, fates: .all(failure)), .init(batchId: 2, ran: false, fates: .all(failure))],
                "the running batch's job keeps its batch; the waiting one never ran")
        #expect(engine.callStarted(1, now: .zero) == .skip, "an abandoned batch must never be processed")
        #expect(engine.statistics.failed == [.shutdownBatch: 2])
    }

    @Test func drainEndsOnceEveryBatchIsDoneAndItsResultsAreHandedOver() {
        var engine = engine(BatcherConfig(maxBatchSize: 5))
        _ = cut(1, reason: .shutdown, into: &engine)

        let draining = engine.drain()
        #expect(!draining.drained)
        #expect(engine.phase == .draining)

        let done = engine.complete(1, verdicts: .allCompleted, attempts: Self.firstTry, now: .zero)
        #expect(!done.drained, "results not handed over yet")
        let handedOver = engine.deliveryFinished(done.delivery!)
        #expect(handedOver == effects { $0.drained = true })
        #expect(engine.phase == .drained)
        #expect(engine.drain() == effects { $0.drained = true }, "a second drain ends at once")
    }

    @Test func drainKeepsTheBackoffOfJobsWaitingToRetry() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 3, initialBackoff: .seconds(60), maxBackoff: .seconds(60)))
        _ = cut(1, into: &engine)
        let failed = engine.complete(1, verdicts: .each([.transient("busy", .error)]), attempts: Self.firstTry, now: .zero)
        #expect(failed.deadlines == [.init(deadline: .retry(1), at: .seconds(60))])
        _ = engine.deliveryFinished(failed.delivery!)

        let draining = engine.drain()
        #expect(draining.started.isEmpty && !draining.drained, "the backend is still down a second later")

        let retried = engine.deadlineReached(.retry(1), now: .seconds(60))
        #expect(retried.rejoin == [1])
    }

    @Test func strictOrderingHoldsLaterBatchesUntilRetriedJobsRanAlone() {
        var engine = engine(BatcherConfig(maxBatchSize: 2, maxAttempts: 2, initialBackoff: .seconds(5), maxBackoff: .seconds(5), ordering: .strict))
        // The intake draws its batches' ids from the same generator.
        _ = cut(engine.policy.batchIds.next(), count: 2, into: &engine)
        #expect(cut(engine.policy.batchIds.next(), count: 2, into: &engine).started.isEmpty, "batch 2 waits for batch 1 (maxInFlight 1)")

        let settled = engine.complete(1, verdicts: .each([.transient("busy", .error), .completed]), attempts: Self.firstTry, now: .seconds(1))
        #expect(settled.started.isEmpty, "nothing later starts while a's retry waits out its backoff")
        #expect(settled.deadlines == [.init(deadline: .retry(1), at: .seconds(6))])
        #expect(settled.settled.map(\.fates) == [.each([.retried(attempt: 2, delay: .seconds(5), token: 1), .completed])])
        #expect(!engine.isRunning(2))

        let due = engine.deadlineReached(.retry(1), now: .seconds(6))
        #expect(due.resent == [.init(token: 1, batchId: 3)])
        #expect(due.flushed == [.init(id: 3, size: 1, reason: .retry)])
        #expect(due.started == [3], "a goes first, alone")

        let after = engine.complete(3, verdicts: .allCompleted, attempts: { _ in 2 }, now: .seconds(7))
        #expect(after.started == [2])
    }

    @Test func isIdleAgainOnceTheResultsOfAnAbandonedDrainAreHandedOver() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        _ = cut(1, into: &engine)

        let abandoned = engine.abandon(reason: "shutdown timed out")
        #expect(abandoned.settled.map(\.fates) == [.all(.failed(.shutdownBatch, "shutdown timed out", fromOutcome: false))])
        let handedOver = engine.deliveryFinished(abandoned.delivery!)

        #expect(handedOver.drained, "a drain after a timed-out one must not wait forever")
        #expect(engine.phase == .drained)
    }

    @Test func aDrainWaitsForTheResultsOfJobsTheIntakeGaveUpOn() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        let abandoned = engine.abandoned(2)
        #expect(abandoned.handOver == abandoned.delivery && abandoned.delivery != nil)

        #expect(!engine.drain().drained)
        #expect(engine.deliveryFinished(abandoned.delivery!).drained)
        #expect(engine.statistics.failed == [.shutdownBatch: 2])
    }

    /// The next batch starts before a settled batch's results are out, on another thread for a
    /// queueing processor; its results wait for the earlier ones, so a key's results go out in
    /// the order its batches settled (with maxInFlight 1, batch order).
    @Test func handsResultsOverOneBatchAtATimeInTheOrderTheySettled() {
        var engine = engine(BatcherConfig(maxInFlight: 2))
        _ = cut(1, into: &engine)
        _ = cut(2, into: &engine)

        let first = engine.complete(1, verdicts: .allCompleted, attempts: Self.firstTry, now: .zero)
        #expect(first.delivery == 1 && first.handOver == 1, "nothing is going out: hand them over now")
        let second = engine.complete(2, verdicts: .allCompleted, attempts: Self.firstTry, now: .zero)
        #expect(second.delivery == 2 && second.handOver == nil, "batch 1's results are still going out: batch 2's wait")
        #expect(!engine.drain().drained)

        let afterFirst = engine.deliveryFinished(1)
        #expect(afterFirst.handOver == 2, "batch 2's results go out once batch 1's are")
        #expect(!afterFirst.drained)
        #expect(engine.deliveryFinished(2).drained)
    }

    @Test func pacesBatchStartsByMinBatchInterval() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxInFlight: 3, minBatchInterval: .seconds(10)))
        _ = cut(1, into: &engine, at: .seconds(1))

        let paced = cut(2, into: &engine, at: .seconds(2))
        #expect(paced.started.isEmpty)
        #expect(paced.deadlines == [.init(deadline: .pacing, at: .seconds(11))])
        #expect(cut(3, into: &engine, at: .seconds(3)).deadlines.isEmpty, "one pacing deadline at a time")

        let due = engine.deadlineReached(.pacing, now: .seconds(11))
        #expect(due.started == [2])
        #expect(due.deadlines == [.init(deadline: .pacing, at: .seconds(21))])
    }
}
