import Batchman
import BatchmanTesting
import Testing

@Suite struct BatchingTests {
    @Test func submitsAJobAndCallsTheCallbackWhenProcessed() async throws {
        let clock = ManualClock()
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), clock: clock, processor: .echo())
        let collector = ResultCollector<String, String>()

        let job = batchman.submit(id: "1", key: "log", payload: "hello", onResult: collector.callback)

        #expect(job.status == .submitted)
        let result = try #require(await collector.wait(forCount: 1).first)
        #expect(result.id == "1")
        #expect(result.key == "log")
        #expect(result.status == .completed)
        #expect(result.result == "hello")
        #expect(result.errorReason == nil)
        #expect(result.attempts == 1)
    }

    @Test func callsAnAsyncCallbackWhenProcessed() async throws {
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: .echo())
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "1", key: "log", payload: "hi") { @Sendable (result: StringResult) async throws in
            await Task.yield()
            collector.results.append(result)
        }

        #expect(await collector.wait(forCount: 1).first?.result == "hi")
    }

    @Test func awaitsAResultDirectly() async throws {
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: .echo())

        let result = await batchman.submit(id: "1", key: "log", payload: "direct")

        #expect(result.status == .completed)
        #expect(result.result == "direct")
    }

    @Test func flushesAtOnceWhenMaxBatchSizeIsReached() async throws {
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(60), maxBatchSize: 3), processor: processor)
        let collector = ResultCollector<String, String>()

        for id in 1...3 { batchman.submit(id: "\(id)", key: "k", payload: "p\(id)", onResult: collector.callback) }

        let batches = await processor.batches.wait(forCount: 1)
        #expect(batches[0].jobs.map(\.id) == ["1", "2", "3"])
        #expect(batches[0].reason == .size)
        #expect(await collector.wait(forCount: 3).allSatisfy { $0.status == .completed })
    }

    @Test func flushesAfterFrequencyAndNotBefore() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(60), maxBatchSize: 10), clock: clock, processor: processor)
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "1", key: "k", payload: "a", onResult: collector.callback)
        #expect(await armedDeadline(clock) == ManualClock.Instant(offset: .seconds(60)))

        clock.advance(by: .milliseconds(59_999))
        #expect(clock.sleeperDeadlines == [ManualClock.Instant(offset: .seconds(60))], "the timer must still be waiting")
        #expect(batchman.getJob(key: "k", id: "1")?.status == .submitted)
        #expect(processor.batches.count == 0)

        clock.advance(by: .milliseconds(1))
        let batches = await processor.batches.wait(forCount: 1)
        #expect(batches[0].reason == .time)
        #expect(await collector.wait(forCount: 1)[0].status == .completed)
    }

    @Test func countsFrequencyFromTheFirstJobOfAnEmptyBatch() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(10)), clock: clock, processor: processor)

        batchman.submit(id: "1", key: "k", payload: "a") { _ in }
        #expect(await armedDeadline(clock) == ManualClock.Instant(offset: .seconds(10)))
        clock.advance(by: .seconds(4))
        batchman.submit(id: "2", key: "k", payload: "b") { _ in }
        clock.advance(by: .seconds(6))

        let batch = await processor.batches.wait(forCount: 1)[0]
        #expect(batch.jobs.map(\.id) == ["1", "2"], "the second job joins the first job's window")
    }

    @Test func leftoversAfterASizeFlushStartANewWindow() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(10), maxBatchSize: 2), clock: clock, processor: processor)

        clock.advance(by: .seconds(3))
        for id in 1...3 { batchman.submit(id: "\(id)", key: "k", payload: "p") { _ in } }
        #expect(await processor.batches.wait(forCount: 1)[0].jobs.map(\.id) == ["1", "2"])

        clock.advance(by: .seconds(12))
        let batches = await processor.batches.wait(forCount: 2)
        #expect(batches[1].jobs.map(\.id) == ["3"])
        #expect(batches[1].reason == .time)
    }

    @Test func reArmsTheTimerForEveryNewWindow() async throws {
        // The seed's timer fired once per key and was never re-armed; ours is, every window.
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(1)), clock: clock, processor: processor)

        for round in 1...3 {
            batchman.submit(id: "\(round)", key: "k", payload: "p") { _ in }
            await clock.waitForSleepers()
            clock.advance(by: .seconds(1))
            let batches = await processor.batches.wait(forCount: round)
            #expect(batches[round - 1].jobs.map(\.id) == ["\(round)"])
            #expect(batches[round - 1].reason == .time)
        }
    }

    @Test func processesMultipleJobsInOneBatch() async throws {
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 5), processor: processor)
        let collector = ResultCollector<String, String>()

        for id in 1...5 { batchman.submit(id: "\(id)", key: "k", payload: "p\(id)", onResult: collector.callback) }

        #expect(await processor.batches.wait(forCount: 1)[0].jobs.count == 5)
        let results = await collector.wait(forCount: 5)
        #expect(Set(results.map(\.id)) == ["1", "2", "3", "4", "5"])
        #expect(Set(results.compactMap(\.batchId)).count == 1, "all five results carry their one batch's id")
    }

    @Test func failsADuplicateIdWhilePendingOrProcessing() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 2), processor: processor)
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "1", key: "k", payload: "first", onResult: collector.callback)
        let pendingDuplicate = batchman.submit(id: "1", key: "k", payload: "again", onResult: collector.callback)
        #expect(pendingDuplicate.status == .failed)
        #expect(collector.results.elements.last?.errorReason == .duplicate)

        batchman.submit(id: "2", key: "k", payload: "second", onResult: collector.callback)
        await processor.batches.wait(forCount: 1)
        batchman.submit(id: "2", key: "k", payload: "again", onResult: collector.callback)
        let duplicates = collector.results.elements.filter { $0.errorReason == .duplicate }
        #expect(duplicates.map(\.id) == ["1", "2"])
        #expect(duplicates[1].errorMessage == "Job \"2\" is already pending for key \"k\"")

        processor.release()
        let results = await collector.wait(forCount: 4)
        #expect(results.filter { $0.status == .completed }.map(\.result) == ["first", "second"])
    }

    @Test func acceptsTheSameIdUnderAnotherKey() async throws {
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: .echo())

        async let first = batchman.submit(id: "1", key: "a", payload: "x")
        async let second = batchman.submit(id: "1", key: "b", payload: "y")

        #expect(await [first.status, second.status] == [.completed, .completed])
    }

    @Test func acceptsAnIdAgainOnceItsJobHasFinished() async throws {
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: .echo())

        #expect(await batchman.submit(id: "1", key: "k", payload: "x").status == .completed)
        #expect(await batchman.submit(id: "1", key: "k", payload: "y").result == "y")
    }

    @Test func getJobReportsSubmittedThenProcessingThenNil() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let clock = ManualClock()
        let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(1)), clock: clock, processor: processor)
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "1", key: "k", payload: "x", onResult: collector.callback)
        let submitted = try #require(batchman.getJob(key: "k", id: "1"))
        #expect(submitted.status == .submitted)
        #expect(submitted.payload == "x")

        await clock.waitForSleepers()
        clock.advance(by: .seconds(1))
        await processor.batches.wait(forCount: 1)
        #expect(batchman.getJob(key: "k", id: "1")?.status == .processing)

        processor.release()
        await collector.wait(forCount: 1)
        #expect(batchman.getJob(key: "k", id: "1") == nil)
    }

    @Test func getJobIsNilForAKeyWithNoBatcher() throws {
        let batchman = try makeBatchman(processor: .echo())
        #expect(batchman.getJob(key: "never-seen", id: "1") == nil)
    }

    @Test func givesEveryBatchAnIdUniqueWithinTheInstance() async throws {
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 2), processor: processor)
        let collector = ResultCollector<String, String>()

        for key in ["a", "b", "c"] {
            for id in 1...4 { batchman.submit(id: "\(id)", key: key, payload: "p", onResult: collector.callback) }
        }

        let batches = await processor.batches.wait(forCount: 6)
        #expect(Set(batches.map(\.id)).count == 6)
        let results = await collector.wait(forCount: 12)
        for batch in batches {
            let carried = results.filter { $0.batchId == batch.id }.map(\.id)
            #expect(Set(carried) == Set(batch.jobs.map(\.id)))
        }
    }
}
