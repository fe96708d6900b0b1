@testable import Batchman
import Testing

/// What a processor may tell the engine beyond a verdict: a retry-after floor under the
/// backoff, a reason of its own, and a pause of the key's new batches.
@Suite struct BatcherEnginePluginHintsTests {
    typealias Engine = BatcherEngine

    func engine(_ config: BatcherConfig) -> Engine {
        Engine(key: "k", policy: KeyPolicy(config: config, batchIds: BatchIdGenerator(), jitter: { $0 / 2 }), reportsCallStart: false)
    }

    func accept(_ id: String, into engine: inout Engine, at now: Duration = .zero) -> Int {
        guard case .accepted(let slot, _) = engine.submit(JobIdentity(key: "k", id: id), size: 1, now: { now }) else { return -1 }
        return slot
    }

    @Test func aRetryAfterLongerThanTheBackoffIsTheDelay() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 3, initialBackoff: .seconds(1)))
        let slot = accept("1", into: &engine)

        let failed = engine.complete(1, verdicts: .each([.transient("locked", .error, retryAfter: .seconds(2))]), now: .seconds(10))

        #expect(failed.retried == [.init(slot: slot, attempt: 2, delay: .seconds(2))], "the backoff drew 500 ms; the floor is 2 s")
        #expect(failed.deadlines == [.init(deadline: .retry(1), at: .seconds(12))])
    }

    @Test func aRetryAfterShorterThanTheBackoffChangesNothing() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 3, initialBackoff: .seconds(4)))
        let slot = accept("1", into: &engine)

        let failed = engine.complete(1, verdicts: .each([.transient("locked", .error, retryAfter: .seconds(1))]), now: .zero)

        #expect(failed.retried == [.init(slot: slot, attempt: 2, delay: .seconds(2))])
    }

    @Test func strictOrderingHoldsRetriesForTheLongestRetryAfterOfTheBatch() {
        var engine = engine(BatcherConfig(maxBatchSize: 2, maxAttempts: 3, initialBackoff: .milliseconds(100), ordering: .strict))
        _ = accept("1", into: &engine)
        _ = accept("2", into: &engine)

        let verdicts: [Engine.Verdict] = [.transient("a", .error, retryAfter: .seconds(1)), .transient("b", .error, retryAfter: .seconds(3))]
        let failed = engine.complete(1, verdicts: .each(verdicts), now: .zero)

        #expect(failed.deadlines == [.init(deadline: .retry(1), at: .seconds(3))])
    }

    @Test func aNamedReasonKeepsItsNameWhenAttemptsRunOut() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .zero, maxBackoff: .zero))
        _ = accept("1", into: &engine)
        _ = engine.complete(1, verdicts: .each([.transient("locked", .named("busy"))]), now: .zero)

        let final = engine.complete(2, verdicts: .each([.transient("locked", .named("busy"))]), now: .zero)

        #expect(final.settled.map(\.outcome) == [.failed(FailureReason(rawValue: "plugin:busy"), "locked")])
        #expect(engine.statistics.failed == [.named("busy"): 1])
    }

    @Test func aKeyCountsAtMostSixteenNamedReasonsOneByOne() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        for index in 0..<20 {
            _ = accept("\(index)", into: &engine)
            _ = engine.complete(UInt64(index + 1), verdicts: .each([.failed("no", .named("r\(index)"))]), now: .zero)
        }

        let failed = engine.statistics.failed
        #expect(failed.count == FailureReason.namedReasonsCounted + 1)
        #expect(failed[.otherNamed] == 4)
        #expect(failed[.named("r0")] == 1)
    }

    @Test func aPausedKeyCutsBatchesButStartsNoneUntilThePauseEnds() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxInFlight: 4))
        let paused = engine.pause(until: .seconds(5), now: .seconds(1))
        #expect(paused.paused == .seconds(4))
        #expect(paused.deadlines == [.init(deadline: .pauseEnds, at: .seconds(5))])

        guard case .accepted(let slot, let effects) = engine.submit(JobIdentity(key: "k", id: "1"), size: 1, now: { .seconds(2) }) else {
            Issue.record("not accepted")
            return
        }
        #expect(effects?.flushed.count == 1, "the batch is cut")
        #expect(effects?.started == [], "but not started")

        let early = engine.deadlineReached(.pauseEnds, now: .seconds(4))
        #expect(early.started.isEmpty, "a stale deadline does not end a pause")
        let resumed = engine.deadlineReached(.pauseEnds, now: .seconds(5))
        #expect(resumed.started == [.init(id: 1, reason: .size, slots: [slot])])
        #expect(engine.pausedUntil == nil)
    }

    @Test func aPauseThatEndsNowResumesAtOnce() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        _ = engine.pause(until: .seconds(60), now: .zero)
        let slot = accept("1", into: &engine, at: .seconds(1))

        let resumed = engine.pause(until: .zero, now: .seconds(2))

        #expect(resumed.started == [.init(id: 1, reason: .size, slots: [slot])])
    }

    @Test func aDrainWaitsForAPauseToEnd() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        _ = engine.pause(until: .seconds(10), now: .zero)
        let slot = accept("1", into: &engine)

        let drain = engine.drain(now: .seconds(1))
        #expect(!drain.drained)
        let resumed = engine.deadlineReached(.pauseEnds, now: .seconds(10))
        #expect(resumed.started == [.init(id: 1, reason: .size, slots: [slot])])
        #expect(engine.complete(1, verdicts: .allCompleted, now: .seconds(11)).settled.count == 1)
    }
}
