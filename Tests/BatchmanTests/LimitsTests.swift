import Foundation
import Batchman
import BatchmanTesting
import Synchronization
import Testing

@Suite struct TimeoutTests {
    @Test func failsAnOverrunningBatchWithTimeoutAndDropsItsLateOutcome() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo(gated: true)
        let config = BatchmanConfig(defaults: BatcherConfig(frequency: .seconds(3600), maxBatchSize: 1, timeout: .seconds(5)))
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent) { _ in processor }
        let collector = ResultCollector<String, String>()
        var events = batchman.events().makeAsyncIterator()

        batchman.submit(id: "slow", key: "k", payload: "p", onResult: collector.callback)
        await processor.batches.wait(forCount: 1)
        await clock.waitForSleepers()
        batchman.submit(id: "next", key: "k", payload: "q", onResult: collector.callback)
        clock.advance(by: .seconds(5))

        let timedOut = await collector.wait(forCount: 1)[0]
        #expect(timedOut.id == "slow")
        #expect(timedOut.errorReason == .timeout)
        #expect(timedOut.errorMessage == "batch 1 timed out after 5.0 seconds")
        #expect(processor.batches.count == 1, "the key gets no new batch while the overrunning call runs")
        var timeoutEvent: BatchmanEvent?
        while let event = await events.next() {
            if case .batchTimedOut = event {
                timeoutEvent = event
                break
            }
        }
        #expect(timeoutEvent == .batchTimedOut(key: "k", batchId: 1, size: 1))

        processor.release(2)
        let results = await collector.wait(forCount: 2)
        #expect(results[1].id == "next")
        await batchman.shutdown()
        #expect(collector.results.count == 2, "the late outcome of the timed-out call was dropped")
    }

    @Test func retriesATimedOutJobWhileAttemptsRemain() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo(gated: true)
        let config = BatchmanConfig(defaults: BatcherConfig(frequency: .seconds(3600), maxBatchSize: 1, maxAttempts: 2, initialBackoff: .zero, timeout: .seconds(5)))
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent) { _ in processor }
        let collector = ResultCollector<String, String>()
        var events = batchman.events().makeAsyncIterator()

        batchman.submit(id: "x", key: "k", payload: "p", onResult: collector.callback)
        await processor.batches.wait(forCount: 1)
        clock.advance(by: .seconds(5))
        while let event = await events.next() {
            if case .jobRetried(_, _, let attempt, _) = event, attempt == 2 { break }
        }
        processor.release(2)

        let result = await collector.wait(forCount: 1)[0]
        #expect(result.status == .completed)
        #expect(result.attempts == 2)
        #expect(processor.batches.elements.map { $0.jobs[0].attempt } == [1, 2])
        await batchman.shutdown()
    }

    /// A queueing processor that stops a call only when Batchman says it overran (as the host
    /// kills an isolated key's worker then): jobs with payload "hang" never finish by themselves.
    final class StoppableProcessor: QueueingBatchProcessor {
        typealias Payload = String
        typealias Output = String
        let stopped = Mutex<[String]>([])

        func enqueue(_ batch: Batch<String>, completion: @escaping @Sendable (Result<[JobOutcome<String>], any Error>) -> Void) {
            let hangs = batch.jobs.contains { $0.payload == "hang" }
            let id = batch.jobs[0].id
            guard batch.beginCall(onTimeout: { [self] in
                stopped.withLock { $0.append(id) }
                completion(.success([]))  // the stopped call returns; its outcome is dropped
            }) else { return completion(.success([])) }
            if !hangs { completion(.success(batch.jobs.map { .completed($0, $0.payload) })) }
        }
    }

    @Test func tellsAQueueingProcessorWhichCallOverranAndNoOther() async throws {
        let clock = ManualClock()
        let processor = StoppableProcessor()
        let config = BatchmanConfig(defaults: BatcherConfig(frequency: .seconds(3600), maxBatchSize: 1, timeout: .seconds(5), maxInFlight: 2))
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent) { _ in processor }
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "quick", key: "k", payload: "ok", onResult: collector.callback)
        #expect(await collector.wait(forCount: 1)[0].status == .completed)
        batchman.submit(id: "stuck", key: "k", payload: "hang", onResult: collector.callback)
        await clock.waitForSleepers()
        // Both calls' timeouts are due now; only the one still running is stopped.
        clock.advance(by: .seconds(5))
        let stuck = await collector.wait(forCount: 2)[1]
        #expect(stuck.id == "stuck" && stuck.errorReason == .timeout)
        #expect(processor.stopped.withLock { $0 } == ["stuck"])
        await batchman.shutdown()
        #expect(processor.stopped.withLock { $0 } == ["stuck"], "told once")
    }
}

@Suite struct ByteLimitTests {
    @Test func cutsABatchBeforeItWouldExceedMaxBatchBytes() async throws {
        let processor = TestProcessor<String, String>.echo()
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 100, maxBatchBytes: 10))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in processor }

        for (id, payload) in [("1", "aaaa"), ("2", "bbbb"), ("3", "cccc"), ("4", "dddddddddd")] {
            batchman.submit(id: id, key: "k", payload: payload) { _ in }
        }
        await batchman.shutdown()

        let batches = processor.batches.elements
        #expect(batches.map { $0.jobs.map(\.id) } == [["1", "2"], ["3"], ["4"]])
        #expect(batches.map(\.reason) == [.bytes, .bytes, .shutdown])
        #expect(batches.allSatisfy { $0.jobs.reduce(0) { $0 + $1.payload.utf8.count } <= 10 })
    }

    @Test func failsAJobLargerThanTheLimitInsteadOfBlockingTheKey() async throws {
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1, maxBatchBytes: 4))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in TestProcessor<String, String>.echo() }

        let tooBig = await batchman.submit(id: "big", key: "k", payload: "12345")
        let fits = await batchman.submit(id: "ok", key: "k", payload: "1234")

        #expect(tooBig.errorReason == .error)
        #expect(tooBig.errorMessage == "payload is 5 bytes, larger than maxBatchBytes (4) for key \"k\"")
        #expect(fits.status == .completed)
    }

    @Test func needsAWayToMeasurePayloadsItDoesNotKnow() {
        struct Opaque: Sendable {}
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchBytes: 10))
        let error = #expect(throws: BatchmanConfigurationError.self) {
            try Batchman<Opaque, String, ManualClock>(config: config, clock: ManualClock()) { _ in ClosureProcessor<Opaque, String> { _ in [] } }
        }
        #expect(error?.description == "maxBatchBytes needs the payloadSize parameter to measure Opaque payloads")
    }
}

@Suite struct InFlightTests {
    @Test func runsOneBatchAtATimePerKeyByDefault() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: processor)

        for id in 1...3 { batchman.submit(id: "\(id)", key: "k", payload: "p") { _ in } }
        await processor.batches.wait(forCount: 1)
        #expect(batchman.statistics().total.inFlight == 1)
        #expect(processor.batches.count == 1, "the second batch waits for the first")

        processor.release(3)
        await batchman.shutdown()
        #expect(processor.batches.elements.map { $0.jobs[0].id } == ["1", "2", "3"], "in order")
    }

    @Test func runsUpToMaxInFlightBatchesOfAKeyAtOnce() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1, maxInFlight: 2))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in processor }

        for id in 1...3 { batchman.submit(id: "\(id)", key: "k", payload: "p") { _ in } }
        await processor.batches.wait(forCount: 2)
        #expect(batchman.statistics().total.inFlight == 2)

        processor.release(3)
        await batchman.shutdown()
        #expect(processor.batches.count == 3)
    }

    @Test func runsDifferentKeysInParallel() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: processor)

        for key in ["a", "b", "c"] { batchman.submit(id: "1", key: key, payload: "p") { _ in } }

        #expect(Set(await processor.batches.wait(forCount: 3).map(\.key)) == ["a", "b", "c"])
        processor.release(3)
        await batchman.shutdown()
    }
}

@Suite struct BackpressureTests {
    @Test func blockHoldsAFastProducerToMaxPendingJobs() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 5, maxPending: 10, overflow: .block))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in processor }
        let collector = ResultCollector<String, String>()
        var events = batchman.events().makeAsyncIterator()
        let producer = Task {
            for id in 0..<200 { await batchman.enqueue(id: "\(id)", key: "k", payload: "p", onResult: collector.callback) }
        }

        var accepted = 0
        while accepted < 10, let event = await events.next() {
            if case .jobAccepted = event { accepted += 1 }
        }
        #expect(batchman.statistics().total.pending == 10, "the producer filled the key, and nothing was released yet")
        var peak = 0
        for released in 0..<40 {
            await processor.batches.wait(forCount: released + 1)
            peak = max(peak, batchman.statistics().total.pending)
            processor.release()
        }
        await producer.value
        await batchman.shutdown()

        #expect(peak <= 10, "never more than maxPending jobs held")
        #expect(collector.results.count == 200)
        #expect(collector.results.elements.allSatisfy { $0.status == .completed })
    }

    @Test func rejectAnswersOverloadedAtOnce() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 10, maxPending: 2, overflow: .reject))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in processor }
        let collector = ResultCollector<String, String>()

        for id in 1...3 { batchman.submit(id: "\(id)", key: "k", payload: "p", onResult: collector.callback) }

        let rejected = try #require(collector.results.elements.first)
        #expect(rejected.id == "3")
        #expect(rejected.errorReason == .overloaded)
        #expect(rejected.errorMessage == "key \"k\" is full: maxPending 2 reached; try again later")
        processor.release(10)
        await batchman.shutdown()
        #expect(batchman.statistics().total.failed[.overloaded] == 1)
    }

    @Test func maxPendingTotalBoundsEveryKeyTogether() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 10, overflow: .reject), maxPendingTotal: 3)
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in processor }
        let collector = ResultCollector<String, String>()

        for key in ["a", "b", "c", "d"] { batchman.submit(id: "1", key: key, payload: "p", onResult: collector.callback) }

        #expect(collector.results.elements.map(\.key) == ["d"])
        #expect(collector.results.elements.first?.errorReason == .overloaded)
        processor.release(10)
        await batchman.shutdown()
    }

    @Test func blockingSubmitWaitsOnItsThreadForRoom() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1, maxPending: 1, overflow: .block))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in processor }
        let submitted = RecordLog<String>()

        Thread.detachNewThread {
            for id in ["1", "2"] {
                batchman.submit(id: id, key: "k", payload: "p") { _ in }
                submitted.append(id)
            }
        }
        await processor.batches.wait(forCount: 1)
        #expect(submitted.elements == ["1"] || submitted.elements.isEmpty, "the second submit blocks while the key is full")
        processor.release()
        #expect(await submitted.wait(forCount: 2) == ["1", "2"])
        processor.release()
        await batchman.shutdown()
    }
}

@Suite struct PacingAndShutdownTests {
    @Test func minBatchIntervalSpacesTheStartsOfFullBatches() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo()
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 2, minBatchInterval: .seconds(5)))
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent) { _ in processor }

        for id in 1...4 { batchman.submit(id: "\(id)", key: "k", payload: "p") { _ in } }
        await processor.batches.wait(forCount: 1)
        await clock.waitForSleepers()
        #expect(clock.sleeperDeadlines.first == ManualClock.Instant(offset: .seconds(5)))
        clock.advance(by: .milliseconds(4999))
        #expect(processor.batches.count == 1, "the second full batch waits for the interval")
        clock.advance(by: .milliseconds(1))

        #expect(await processor.batches.wait(forCount: 2)[1].jobs.map(\.id) == ["3", "4"])
        await batchman.shutdown()
    }

    @Test func shutdownTimeoutFailsUnfinishedJobsWithShutdownBatch() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo(gated: true)
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1), shutdownTimeout: .seconds(30))
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent) { _ in processor }
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "stuck", key: "k", payload: "p", onResult: collector.callback)
        batchman.submit(id: "queued", key: "k", payload: "p", onResult: collector.callback)
        await processor.batches.wait(forCount: 1)
        async let drained: Void = batchman.shutdown()
        await clock.waitForSleepers()
        clock.advance(by: .seconds(30))
        await drained

        let results = collector.results.elements
        #expect(Set(results.map(\.id)) == ["stuck", "queued"])
        #expect(results.allSatisfy { $0.errorReason == .shutdownBatch && $0.errorMessage == "shutdown timed out after 30.0 seconds; the job did not finish" })
        processor.release(2)
    }

    /// Abandoning a key with jobs in all three places at once: one batch running, one waiting
    /// for room, one job in the open window. Two events settle jobs under one call (the intake's
    /// window, then the flight's batches), each with a delivery of its own; the window's results
    /// go first, the batches' after.
    @Test func abandonFailsJobsInTheWindowAndInFlightAlike() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo(gated: true)
        let config = BatchmanConfig(defaults: BatcherConfig(frequency: .seconds(60), maxBatchSize: 2, maxInFlight: 1))
        let batchman = try TestBatchman(config: config, clock: clock, logger: .silent) { _ in processor }
        let collector = ResultCollector<String, String>()

        for id in ["running-1", "running-2"] { batchman.submit(id: id, key: "k", payload: "p", onResult: collector.callback) }
        await processor.batches.wait(forCount: 1)
        for id in ["waiting-1", "waiting-2", "window"] { batchman.submit(id: id, key: "k", payload: "p", onResult: collector.callback) }
        await batchman.abandon("output gone")

        let results = collector.results.elements
        #expect(results.map(\.id) == ["window", "running-1", "running-2", "waiting-1", "waiting-2"])
        #expect(results.allSatisfy { $0.errorReason == .shutdownBatch && $0.errorMessage == "output gone" })
        processor.release(1)
    }
}

@Suite struct StatisticsTests {
    @Test func countsAcceptedCompletedFailedRetriedAndBatchesPerKey() async throws {
        let config = BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 2, maxAttempts: 2, initialBackoff: .zero))
        let batchman = try TestBatchman(config: config, clock: ManualClock(), logger: .silent) { _ in flaky(["r"], succeedOn: 2) }

        for id in ["a", "r"] { batchman.submit(id: id, key: "x", payload: "p") { _ in } }
        batchman.submit(id: "a", key: "x", payload: "dup") { _ in }
        batchman.submit(id: "b", key: "y", payload: "p") { _ in }
        await batchman.shutdown()

        let statistics = batchman.statistics()
        #expect(statistics.perKey["x"]?.accepted == 2)
        #expect(statistics.perKey["x"]?.completed == 2)
        #expect(statistics.perKey["x"]?.retried == 1)
        #expect(statistics.perKey["x"]?.batches == 2)
        #expect(statistics.perKey["x"]?.meanBatchSize == 1.5)
        #expect(statistics.total.accepted == 3)
        #expect(statistics.total.completed == 3)
        #expect(statistics.total.failed == [.duplicate: 1])
        #expect(statistics.total.pending == 0)
    }
}
