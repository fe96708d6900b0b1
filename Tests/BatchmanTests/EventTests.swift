import Batchman
import BatchmanTesting
import Testing

@Suite struct EventTests {
    @Test func streamsTheLifecycleOfJobsAndBatches() async throws {
        let processor = TestProcessor<String, String> { batch in
            [.completed(batch.jobs[0], "ok"), .failed(batch.jobs[1], "no")]
        }
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 2), processor: processor)
        let events = batchman.events()

        batchman.submit(id: "1", key: "k", payload: "a") { _ in }
        batchman.submit(id: "1", key: "k", payload: "dup") { _ in }
        batchman.submit(id: "2", key: "k", payload: "b") { _ in }
        await batchman.shutdown()

        var seen: [BatchmanEvent] = []
        for await event in events { seen.append(event) }
        let batchId = try #require(processor.batches.elements.first?.id)
        #expect(seen == [
            .jobAccepted(key: "k", id: "1"),
            .jobRejected(key: "k", id: "1", reason: .duplicate),
            .jobAccepted(key: "k", id: "2"),
            .batchFlushed(key: "k", batchId: batchId, size: 2, reason: .size),
            .batchCompleted(key: "k", batchId: batchId, size: 2, failed: 1),
            .jobCompleted(key: "k", id: "1", batchId: batchId),
            .jobFailed(key: "k", id: "2", batchId: batchId, reason: .error),
        ])
    }

    @Test func reportsTimeAndShutdownFlushes() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(1)), clock: clock, processor: processor)
        let events = batchman.events()

        batchman.submit(id: "1", key: "k", payload: "a") { _ in }
        await clock.waitForSleepers()
        clock.advance(by: .seconds(1))
        await processor.batches.wait(forCount: 1)
        batchman.submit(id: "2", key: "other", payload: "b") { _ in }
        await batchman.shutdown()

        var reasons: [String: FlushReason] = [:]
        for await case .batchFlushed(let key, _, _, let reason) in events { reasons[key] = reason }
        #expect(reasons == ["k": .time, "other": .shutdown])
    }

    @Test func givesEverySubscriberEveryEvent() async throws {
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: .echo())
        let first = batchman.events()
        let second = batchman.events()

        _ = await batchman.submit(id: "1", key: "k", payload: "a")
        await batchman.shutdown()

        var firstCount = 0, secondCount = 0
        for await _ in first { firstCount += 1 }
        for await _ in second { secondCount += 1 }
        #expect(firstCount == 4)
        #expect(secondCount == 4)
    }
}

@Suite struct DebugLoggingTests {
    @Test func logsEachBatchAtDebugLevelWhenDebugIsOn() async throws {
        let log = LogRecorder()
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1, debug: true), logger: log.logger, processor: .echo())

        _ = await batchman.submit(id: "1", key: "k", payload: "a")
        await batchman.shutdown()

        let debug = log.messages(at: .debug)
        #expect(debug.contains { $0.contains("flushed by size with 1 jobs") })
        #expect(debug.contains { $0.contains("completed, 0 of 1 jobs failed") })
    }

    @Test func staysQuietWhenDebugIsOff() async throws {
        let log = LogRecorder()
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), logger: log.logger, processor: .echo())

        _ = await batchman.submit(id: "1", key: "k", payload: "a")
        await batchman.shutdown()

        #expect(log.entries.count == 0)
    }
}
