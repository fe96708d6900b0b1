@testable import Batchman
import Testing

/// What a processor may tell the engine beyond a verdict: a retry-after floor under the
/// backoff, a reason of its own, and a pause of the key's new batches.
@Suite struct FlightEnginePluginHintsTests {
    typealias Engine = FlightEngine

    func engine(_ config: BatcherConfig) -> Engine {
        Engine(policy: KeyPolicy(config: config, batchIds: BatchIdGenerator(), jitter: { $0 / 2 }), reportsCallStart: false)
    }

    func cut(_ id: UInt64, into engine: inout Engine, at now: Duration = .zero) -> Engine.Effects {
        engine.accept(batch: id, reason: .size, count: 1, now: now)
    }

    static func firstTry(_ position: Int) -> Int { 1 }

    @Test func aRetryAfterLongerThanTheBackoffIsTheDelay() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 3, initialBackoff: .seconds(1)))
        _ = cut(1, into: &engine)

        let failed = engine.complete(1, verdicts: .each([.transient("locked", .error, retryAfter: .seconds(2))]), attempts: Self.firstTry,
                                     now: .seconds(10))

        #expect(failed.settled.map(\.fates) == [.each([.retried(attempt: 2, delay: .seconds(2), token: 1)])], "the backoff drew 500 ms; the floor is 2 s")
        #expect(failed.deadlines == [.init(deadline: .retry(1), at: .seconds(12))])
    }

    @Test func aRetryAfterShorterThanTheBackoffChangesNothing() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 3, initialBackoff: .seconds(4)))
        _ = cut(1, into: &engine)

        let failed = engine.complete(1, verdicts: .each([.transient("locked", .error, retryAfter: .seconds(1))]), attempts: Self.firstTry, now: .zero)

        #expect(failed.settled.map(\.fates) == [.each([.retried(attempt: 2, delay: .seconds(2), token: 1)])])
    }

    @Test func strictOrderingHoldsRetriesForTheLongestRetryAfterOfTheBatch() {
        var engine = engine(BatcherConfig(maxBatchSize: 2, maxAttempts: 3, initialBackoff: .milliseconds(100), ordering: .strict))
        _ = engine.accept(batch: 1, reason: .size, count: 2, now: .zero)

        let verdicts: [Engine.Verdict] = [.transient("a", .error, retryAfter: .seconds(1)), .transient("b", .error, retryAfter: .seconds(3))]
        let failed = engine.complete(1, verdicts: .each(verdicts), attempts: Self.firstTry, now: .zero)

        #expect(failed.deadlines == [.init(deadline: .retry(1), at: .seconds(3))])
        #expect(failed.settled.map(\.fates) == [.each([.retried(attempt: 2, delay: .seconds(3), token: 1), .retried(attempt: 2, delay: .seconds(3), token: 1)])])
    }

    @Test func aNamedReasonKeepsItsNameWhenAttemptsRunOut() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .zero, maxBackoff: .zero))
        _ = cut(1, into: &engine)

        let final = engine.complete(1, verdicts: .each([.transient("locked", .named("busy"))]), attempts: { _ in 2 }, now: .zero)

        #expect(final.settled.map(\.fates) == [.each([.failed(FailureReason(rawValue: "plugin:busy"), "locked", fromOutcome: false)])])
        #expect(engine.statistics.failed == [.named("busy"): 1])
    }

    @Test func aKeyCountsAtMostSixteenNamedReasonsOneByOne() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        for index in 0..<20 {
            _ = cut(UInt64(index + 1), into: &engine)
            _ = engine.complete(UInt64(index + 1), verdicts: .each([.failed("no", .named("r\(index)"))]), attempts: Self.firstTry, now: .zero)
        }

        let failed = engine.statistics.failed
        #expect(failed.count == FailureReason.namedReasonsCounted + 1)
        #expect(failed[.otherNamed] == 4)
        #expect(failed[.named("r0")] == 1)
    }

    @Test func aPausedKeyTakesBatchesButStartsNoneUntilThePauseEnds() {
        var engine = engine(BatcherConfig(maxBatchSize: 1, maxInFlight: 4))
        let paused = engine.pause(until: .seconds(5), now: .seconds(1))
        #expect(paused.paused == .seconds(4))
        #expect(paused.deadlines == [.init(deadline: .pauseEnds, at: .seconds(5))])

        let cut = cut(1, into: &engine, at: .seconds(2))
        #expect(cut.flushed.count == 1, "the batch is cut")
        #expect(cut.started == [], "but not started")

        let early = engine.deadlineReached(.pauseEnds, now: .seconds(4))
        #expect(early.started.isEmpty, "a stale deadline does not end a pause")
        let resumed = engine.deadlineReached(.pauseEnds, now: .seconds(5))
        #expect(resumed.started == [1])
        #expect(engine.pausedUntil == nil)
    }

    @Test func aPauseThatEndsNowResumesAtOnce() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        _ = engine.pause(until: .seconds(60), now: .zero)
        _ = cut(1, into: &engine, at: .seconds(1))

        let resumed = engine.pause(until: .zero, now: .seconds(2))

        #expect(resumed.started == [1])
    }

    @Test func aDrainWaitsForAPauseToEnd() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        _ = engine.pause(until: .seconds(10), now: .zero)
        _ = cut(1, into: &engine)

        let drain = engine.drain()
        #expect(!drain.drained)
        let resumed = engine.deadlineReached(.pauseEnds, now: .seconds(10))
        #expect(resumed.started == [1])
        #expect(engine.complete(1, verdicts: .allCompleted, attempts: Self.firstTry, now: .seconds(11)).settled.count == 1)
    }
}
