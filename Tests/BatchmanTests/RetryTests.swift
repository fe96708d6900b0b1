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

    @Test func retriesPendingAtShutdownKeepTheirBackoff() async throws {
        let clock = ManualClock()
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .seconds(3600), maxBackoff: .seconds(3600)))
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent, jitter: { $0 }) { _ in flaky(["x"], succeedOn: 2) }
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "x", key: "k", payload: "p", onResult: collector.callback)
        await clock.waitForSleepers()  // the retry's backoff is armed
        let drained = Task { await batchman.shutdown() }
        #expect(clock.sleeperDeadlines.count == 1, "the drain did not cut the backoff short")
        #expect(collector.results.elements.isEmpty)
        clock.advance(by: .seconds(3600))
        await drained.value

        #expect(collector.results.elements.map(\.result) == ["p@2"], "retried once its backoff had passed, and the drain waited for it")
    }

    @Test func aShutdownTimeoutEndsARetrysBackoffWithShutdownBatch() async throws {
        let clock = ManualClock()
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1, maxAttempts: 2, initialBackoff: .seconds(3600), maxBackoff: .seconds(3600)),
                                    shutdownTimeout: .seconds(5))
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent, jitter: { $0 }) { _ in flaky(["x"], succeedOn: 2) }
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "x", key: "k", payload: "p", onResult: collector.callback)
        await clock.waitForSleepers()
        let drained = Task { await batchman.shutdown() }
        await clock.waitForSleepers(count: 2)  // the backoff and the shutdown's timeout
        clock.advance(by: .seconds(5))
        await drained.value

        #expect(collector.results.elements.map(\.errorReason) == [.shutdownBatch])
    }
}

/// `ordering`: what order a key's jobs reach its processor in when some are retried.
@Suite struct OrderingTests {
    /// Sends a, b (a fails once), then c, d; returns the batches the processor saw, by id.
    func batches(_ ordering: Ordering) async throws -> [[String]] {
        let clock = ManualClock()
        let processor = flaky(["a"], succeedOn: 2)
        let config = BatchmanConfig(defaults: BatcherConfig(frequency: .seconds(1), maxBatchSize: 2, maxAttempts: 3, initialBackoff: .seconds(1),
                                                            maxBackoff: .seconds(1), ordering: ordering))
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent, jitter: { $0 }) { _ in processor }
        for id in ["a", "b", "c", "d"] { batchman.submit(id: id, key: "k", payload: id) { _ in } }
        await clock.waitForSleepers()  // a's backoff: batch 1 is done
        // relaxed: c and d went on at once; strict: they wait for a.
        await processor.batches.wait(forCount: ordering == .relaxed ? 2 : 1)
        #expect(processor.batches.elements.count == (ordering == .relaxed ? 2 : 1))
        clock.advance(by: .seconds(1))
        if ordering == .relaxed {
            // a joins a new window, cut when its frequency has passed.
            await clock.waitForSleepers()
            clock.advance(by: .seconds(1))
        }
        await processor.batches.wait(forCount: 3)
        await batchman.shutdown()
        return processor.batches.elements.map { $0.jobs.map(\.id) }
    }

    @Test func relaxedLetsLaterJobsPassARetriedOne() async throws {
        #expect(try await batches(.relaxed) == [["a", "b"], ["c", "d"], ["a"]])
    }

    @Test func strictSendsRetriedJobsAloneBeforeAnyLaterJob() async throws {
        #expect(try await batches(.strict) == [["a", "b"], ["a"], ["c", "d"]])
    }

    @Test func strictNeedsOneBatchInFlight() {
        #expect(throws: BatchmanConfigurationError.self) {
            try TestBatchman(config: BatchmanConfig(defaults: BatcherConfig(maxInFlight: 2, ordering: .strict)), clock: ManualClock(),
                             logger: .silent) { _ in flaky([]) }
        }
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
