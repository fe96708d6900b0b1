import FoundationEssentials
import Batchman
import BatchmanTesting
import Testing

struct ProcessorFailure: Error, CustomStringConvertible {
    let description: String
}

@Suite struct UntrustedProcessorTests {
    let config = BatchmanConfig(maxBatchSize: 2)

    @Test func failsEveryJobOfTheBatchWhenTheProcessorThrows() async throws {
        let processor = TestProcessor<String, String> { _ in throw ProcessorFailure(description: "database down") }
        let batchman = try makeBatchman(config, processor: processor)

        async let first = batchman.submit(id: "1", key: "k", payload: "a")
        async let second = batchman.submit(id: "2", key: "k", payload: "b")

        for result in await [first, second] {
            #expect(result.status == .failed)
            #expect(result.errorReason == .error)
            #expect(result.errorMessage == "database down")
            #expect(result.batchId != nil)
        }
    }

    @Test func failsJobsTheProcessorLeftWithoutAResult() async throws {
        let processor = TestProcessor<String, String> { batch in [.completed(batch.jobs[0], "only the first")] }
        let batchman = try makeBatchman(config, processor: processor)

        async let first = batchman.submit(id: "1", key: "k", payload: "a")
        async let second = batchman.submit(id: "2", key: "k", payload: "b")

        let (answered, forgotten) = await (first, second)
        #expect(answered.result == "only the first")
        #expect(forgotten.status == .failed)
        #expect(forgotten.errorReason == .error)
        #expect(forgotten.errorMessage == "No result returned for job")
    }

    @Test func failsEveryJobWhenTheProcessorReturnsNothing() async throws {
        let batchman = try makeBatchman(config, processor: TestProcessor { _ in [] })

        async let first = batchman.submit(id: "1", key: "k", payload: "a")
        async let second = batchman.submit(id: "2", key: "k", payload: "b")

        #expect(await [first, second].map(\.errorMessage) == ["No result returned for job", "No result returned for job"])
    }

    @Test func ignoresAndLogsResultsForJobsNotInTheBatch() async throws {
        let processor = TestProcessor<String, String> { batch in
            [JobOutcome(key: "k", id: "stranger", status: .completed, result: "?")]
                + batch.jobs.reversed().map { .completed($0, $0.payload) }
        }
        let log = LogRecorder()
        let batchman = try makeBatchman(config, logger: log.logger, processor: processor)

        async let first = batchman.submit(id: "1", key: "k", payload: "a")
        async let second = batchman.submit(id: "2", key: "k", payload: "b")

        #expect(await [first.result, second.result] == ["a", "b"], "results are matched by id, not position")
        let warnings = log.messages(at: .warning)
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("job \"stranger\"") == true)
        #expect(warnings.first?.contains("not in the batch") == true)
    }

    @Test func keepsTheFirstOfTwoResultsForOneJob() async throws {
        let processor = TestProcessor<String, String> { batch in
            batch.jobs.map { .completed($0, "first") } + batch.jobs.map { .failed($0, "second") }
        }
        let log = LogRecorder()
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), logger: log.logger, processor: processor)

        let result = await batchman.submit(id: "1", key: "k", payload: "a")

        #expect(result.result == "first")
        #expect(log.messages(at: .warning).first?.contains("second result for job \"1\"") == true)
    }

    @Test func treatsAProcessingOrSubmittedStatusAsCompleted() async throws {
        let processor = TestProcessor<String, String> { batch in
            [JobOutcome(key: "k", id: batch.jobs[0].id, status: .processing, result: "done"),
             JobOutcome(key: "k", id: batch.jobs[1].id, status: .submitted, result: "also")]
        }
        let batchman = try makeBatchman(config, processor: processor)

        async let first = batchman.submit(id: "1", key: "k", payload: "a")
        async let second = batchman.submit(id: "2", key: "k", payload: "b")

        #expect(await [first.status, second.status] == [.completed, .completed])
    }

    @Test func reportsAFailedOutcomeWithItsMessage() async throws {
        let processor = TestProcessor<String, String> { batch in batch.jobs.map { .failed($0, "bad payload \($0.payload)") } }
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: processor)

        let result = await batchman.submit(id: "1", key: "k", payload: "x")

        #expect(result.status == .failed)
        #expect(result.errorReason == .error)
        #expect(result.errorMessage == "bad payload x")
    }

    @Test func setsCompletedAtUnlessTheProcessorDid() async throws {
        let chosen = Date(timeIntervalSince1970: 1_000)
        let processor = TestProcessor<String, String> { batch in
            [JobOutcome(key: "k", id: batch.jobs[0].id, status: .completed, result: "a", completedAt: chosen),
             .completed(batch.jobs[1], "b")]
        }
        let batchman = try makeBatchman(config, processor: processor)

        async let first = batchman.submit(id: "1", key: "k", payload: "a")
        async let second = batchman.submit(id: "2", key: "k", payload: "b")

        let (kept, filled) = await (first, second)
        #expect(kept.completedAt == chosen)
        #expect(filled.completedAt >= filled.submittedAt)
        #expect(filled.completedAt > chosen)
    }

    @Test func logsAThrowingCallbackAndDeliversTheOthers() async throws {
        let log = LogRecorder()
        let batchman = try makeBatchman(config, logger: log.logger, processor: .echo())
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "1", key: "k", payload: "a") { (_: StringResult) throws in
            throw ProcessorFailure(description: "callback exploded")
        }
        batchman.submit(id: "2", key: "k", payload: "b", onResult: collector.callback)

        #expect(await collector.wait(forCount: 1)[0].result == "b")
        let errors = await log.entries.wait(forCount: 1).filter { $0.level == .error }.map(\.message)
        #expect(errors == ["result callback for job \"1\" (key \"k\") threw: callback exploded"])
    }

    @Test func logsAThrowingAsyncCallback() async throws {
        let log = LogRecorder()
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), logger: log.logger, processor: .echo())

        batchman.submit(id: "1", key: "k", payload: "a") { @Sendable (_: StringResult) async throws in
            throw ProcessorFailure(description: "async callback exploded")
        }

        let entry = await log.entries.wait(forCount: 1)[0]
        #expect(entry.level == .error)
        #expect(entry.message.hasSuffix("threw: async callback exploded"))
    }

    @Test func keepsProcessingAfterAFailedBatch() async throws {
        let calls = RecordLog<Int>()
        let processor = TestProcessor<String, String> { batch in
            calls.append(calls.count)
            if calls.count == 1 { throw ProcessorFailure(description: "first call fails") }
            return batch.jobs.map { .completed($0, $0.payload) }
        }
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: processor)

        #expect(await batchman.submit(id: "1", key: "k", payload: "a").status == .failed)
        #expect(await batchman.submit(id: "2", key: "k", payload: "b").status == .completed)
    }
}
