import Batchman
import BatchmanTesting
import Testing

/// A processor that answers `retry` for the listed ids until their `succeedOn` attempt.
func flaky(_ ids: Set<String>, succeedOn attempt: Int = .max, gated: Bool = false) -> TestProcessor<String, String> {
    TestProcessor(gated: gated) { batch in
        batch.jobs.map { job in
            ids.contains(job.id) && job.attempt < attempt
                ? .retry(job, "transient failure on attempt \(job.attempt)")
                : .completed(job, "\(job.payload)@\(job.attempt)")
        }
    }
}

@Suite struct RetryTests {
    @Test func retriesOnlyTheFailedJobUntilItSucceeds() async throws {
        let processor = flaky(["b"], succeedOn: 3)
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 3, maxAttempts: 3, initialBackoff: .zero))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent, processor: { _ in processor })
        let collector = ResultCollector<String, String>()

        for id in ["a", "b", "c"] { batchman.submit(id: id, key: "k", payload: id, onResult: collector.callback) }
        await batchman.shutdown()

        let results = Dictionary(uniqueKeysWithValues: collector.results.elements.map { ($0.id, $0) })
        #expect(results["b"]?.status == .completed)
        #expect(results["b"]?.result == "b@3")
        #expect(results["b"]?.attempts == 3)
        let sent = processor.batches.elements.flatMap { $0.jobs.map(\.id) }
        #expect(sent.filter { $0 == "a" }.count == 1, "batch-mates are processed exactly once")
        #expect(sent.filter { $0 == "c" }.count == 1)
        #expect(sent.filter { $0 == "b" }.count == 3)
    }

    @Test func failsWithMaxRetryAndTheLastMessageWhenAttemptsRunOut() async throws {
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .zero))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in flaky(["x"], succeedOn: 3) }

        let result = await batchman.submit(id: "x", key: "k", payload: "p")

        #expect(result.status == .failed)
        #expect(result.errorReason == .maxRetry)
        #expect(result.errorMessage == "transient failure on attempt 2")
        #expect(result.attempts == 2)
    }

    @Test func neverRetriesAPermanentFailure() async throws {
        let processor = TestProcessor<String, String> { batch in batch.jobs.map { .failed($0, "bad payload") } }
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1, maxAttempts: 5, initialBackoff: .zero))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in processor }

        let result = await batchman.submit(id: "x", key: "k", payload: "p")

        #expect(result.errorReason == .error)
        #expect(result.attempts == 1)
        #expect(processor.batches.count == 1)
    }

    @Test func retriesAThrownErrorAndAMissingResult() async throws {
        let calls = RecordLog<Int>()
        let processor = TestProcessor<String, String> { batch in
            calls.append(batch.jobs[0].attempt)
            switch batch.jobs[0].attempt {
            case 1: throw ProcessorFailure(description: "connection reset")
            case 2: return []
            default: return batch.jobs.map { .completed($0, "ok") }
            }
        }
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1, maxAttempts: 3, initialBackoff: .zero))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in processor }

        let result = await batchman.submit(id: "x", key: "k", payload: "p")

        #expect(result.result == "ok")
        #expect(calls.elements == [1, 2, 3])
    }

    @Test func waitsTheBackoffOnTheClockBeforeEachRetry() async throws {
        let clock = ManualClock()
        let config = BatchmanConfig(defaults: BatcherConfig(
            frequency: .seconds(3600), maxBatchSize: 1, maxAttempts: 3,
            initialBackoff: .seconds(1), maxBackoff: .seconds(10), backoffMultiplier: 4))
        let processor = flaky(["x"], succeedOn: 3)
        // The jitter returns the ceiling itself, so the delays are exact.
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent, jitter: { $0 }) { _ in processor }
        let events = batchman.events()
        var retries = events.makeAsyncIterator()
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "x", key: "k", payload: "p", onResult: collector.callback)
        #expect(await nextRetry(&retries) == .jobRetried(key: "k", id: "x", attempt: 2, delay: .seconds(1)))
        await clock.waitForSleepers()
        #expect(clock.sleeperDeadlines.first == ManualClock.Instant(offset: .seconds(1)))
        clock.advance(by: .milliseconds(999))
        #expect(processor.batches.count == 1, "not before the backoff")
        clock.advance(by: .milliseconds(1))

        #expect(await nextRetry(&retries) == .jobRetried(key: "k", id: "x", attempt: 3, delay: .seconds(4)))
        await clock.waitForSleepers()
        #expect(clock.sleeperDeadlines.first == ManualClock.Instant(offset: .seconds(5)))
        clock.advance(by: .seconds(4))

        #expect(await collector.wait(forCount: 1)[0].result == "p@3")
        await batchman.shutdown()
    }

    private func nextRetry(_ iterator: inout AsyncStream<BatchmanEvent>.Iterator) async -> BatchmanEvent? {
        while let event = await iterator.next() {
            if case .jobRetried = event { return event }
        }
        return nil
    }

    @Test func retriesPendingAtShutdownSkipTheirBackoff() async throws {
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .seconds(3600), maxBackoff: .seconds(3600)))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent, jitter: { $0 }) { _ in flaky(["x"], succeedOn: 2) }
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "x", key: "k", payload: "p", onResult: collector.callback)
        await batchman.shutdown()

        #expect(collector.results.elements.map(\.result) == ["p@2"], "retried during the drain without waiting an hour")
    }
}

@Suite struct BackoffTests {
    @Test func ceilingsGrowByTheMultiplierUpToTheMaximum() {
        let config = BatcherConfig(initialBackoff: .milliseconds(100), maxBackoff: .seconds(1), backoffMultiplier: 2)
        let ceilings = (1...6).map { config.backoffCeiling(beforeRetry: $0) }
        #expect(ceilings == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
    }

    @Test func fullJitterDrawsBetweenZeroAndTheCeiling() {
        let ceiling = Duration.milliseconds(250)
        let draws = (0..<2000).map { _ in TestBatchman.fullJitter(ceiling) }
        #expect(draws.allSatisfy { $0 >= .zero && $0 <= ceiling })
        #expect(draws.contains { $0 < .milliseconds(25) }, "the low end is reached")
        #expect(draws.contains { $0 > .milliseconds(225) }, "the high end is reached")
        #expect(TestBatchman.fullJitter(.zero) == .zero)
    }
}
