import Batchman
import BatchmanTesting
import Testing

/// What a processor can say beyond an outcome, through the public API: a retry-after that the
/// backoff honours as a floor, a reason of its own, a pause of its key; and what a job says of
/// having been delivered before.
@Suite struct ProcessorHintsTests {
    @Test func aRetryAfterHoldsTheRetryBackPastTheBackoff() async throws {
        let clock = ManualClock()
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .milliseconds(10)))
        let processor = TestProcessor<String, String> { batch in
            batch.jobs.map { $0.attempt == 1 ? .retry($0, "locked", after: .seconds(5)) : .completed($0, "done") }
        }
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent, jitter: { $0 }) { _ in processor }
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "1", key: "k", payload: "p", onResult: collector.callback)
        await clock.waitForSleepers()

        #expect(clock.sleeperDeadlines == [clock.now.advanced(by: .seconds(5))], "5 s, not the 10 ms backoff")
        clock.advance(by: .seconds(5))
        let results = await collector.wait(forCount: 1)
        #expect(results.map(\.attempts) == [2])
        await batchman.shutdown()
    }

    @Test func aReasonTheProcessorNamesIsTheResultsReason() async throws {
        let processor = TestProcessor<String, String> { batch in batch.jobs.map { .failed($0, "duplicate row", reason: .named("constraint")) } }
        let batchman = try TestBatchman(config: BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1)), clock: ManualClock(), logger: .silent) { _ in
            processor
        }
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "1", key: "k", payload: "p", onResult: collector.callback)
        let results = await collector.wait(forCount: 1)

        #expect(results.first?.errorReason?.rawValue == "plugin:constraint")
        #expect(batchman.statistics().total.failed == [.named("constraint"): 1])
        await batchman.shutdown()
    }

    @Test func aPausedKeyStartsNoBatchUntilThePauseEnds() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo()
        let batchman = try TestBatchman(config: BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1)), clock: clock, logger: .silent) { _ in
            processor
        }
        let collector = ResultCollector<String, String>()
        batchman.submit(id: "1", key: "k", payload: "a", onResult: collector.callback)
        _ = await collector.wait(forCount: 1)

        #expect(batchman.pause(key: "k", for: .seconds(30)))
        #expect(!batchman.pause(key: "never-seen", for: .seconds(30)), "a key without a batcher")
        batchman.submit(id: "2", key: "k", payload: "b", onResult: collector.callback)
        await clock.waitForSleepers()
        #expect(processor.batches.elements.count == 1, "the second batch waits for the pause")
        clock.advance(by: .seconds(30))

        #expect(await collector.wait(forCount: 2).map(\.id) == ["1", "2"])
        await batchman.shutdown()
    }

    @Test func aJobIsARedeliveryWhenRetriedOrWhenItsSubmitterSaysSo() {
        #expect(!Job(id: "1", key: "k", payload: 0).isRedelivery)
        #expect(Job(id: "1", key: "k", payload: 0, attempt: 2).isRedelivery)
        #expect(Job(id: "1", key: "k", payload: 0, tag: JobTag(redelivered: true)).isRedelivery)
    }
}
