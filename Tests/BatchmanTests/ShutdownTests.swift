import Batchman
import BatchmanTesting
import Testing

@Suite struct ShutdownTests {
    @Test func processesEveryPendingJobOfEveryKeyBeforeReturning() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(3600), maxBatchSize: 3), clock: clock, processor: processor)
        let collector = ResultCollector<String, String>()

        for key in ["a", "b", "c"] {
            for id in 1...4 { batchman.submit(id: "\(id)", key: key, payload: "\(key)\(id)", onResult: collector.callback) }
        }
        await batchman.shutdown()

        let results = collector.results.elements
        #expect(results.count == 12, "every job has its result when shutdown returns, without the clock moving")
        #expect(results.allSatisfy { $0.status == .completed })
        let shutdownBatches = processor.batches.elements.filter { $0.reason == .shutdown }
        #expect(Set(shutdownBatches.map(\.key)) == ["a", "b", "c"])
        #expect(shutdownBatches.allSatisfy { $0.jobs.count == 1 })
    }

    @Test func waitsForABatchThatIsStillProcessing() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: processor)
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "1", key: "k", payload: "slow", onResult: collector.callback)
        await processor.batches.wait(forCount: 1)
        async let drained: Void = batchman.shutdown()
        processor.release()
        await drained

        #expect(collector.results.elements.map(\.result) == ["slow"])
    }

    @Test func waitsForAsyncCallbacksToFinish() async throws {
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 5), processor: .echo())
        let delivered = RecordLog<String>()

        batchman.submit(id: "1", key: "k", payload: "p") { @Sendable (result: StringResult) async throws in
            for _ in 0..<10 { await Task.yield() }
            delivered.append(result.id)
        }
        await batchman.shutdown()

        #expect(delivered.elements == ["1"])
    }

    @Test func failsSubmissionsAfterShutdownBegins() async throws {
        let batchman = try makeBatchman(processor: .echo())
        let collector = ResultCollector<String, String>()
        batchman.submit(id: "1", key: "existing", payload: "p", onResult: collector.callback)

        await batchman.shutdown()
        let refusedNewKey = batchman.submit(id: "2", key: "new", payload: "p", onResult: collector.callback)
        let refusedOldKey = await batchman.submit(id: "3", key: "existing", payload: "p")

        #expect(refusedNewKey.status == .failed)
        #expect(refusedOldKey.status == .failed)
        #expect(refusedOldKey.errorReason == .shutdownBatch)
        let results = collector.results.elements
        #expect(results.map(\.errorReason) == [nil, .shutdownBatch])
        #expect(results[1].errorMessage?.contains("shutting down") == true)
    }

    @Test func canBeCalledTwice() async throws {
        let batchman = try makeBatchman(processor: .echo())
        batchman.submit(id: "1", key: "k", payload: "p") { _ in }

        await batchman.shutdown()
        await batchman.shutdown()
    }

    @Test func drainsTheWholeBacklogOfAKey() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 2), processor: processor)
        let collector = ResultCollector<String, String>()

        for id in 1...7 { batchman.submit(id: "\(id)", key: "k", payload: "p", onResult: collector.callback) }
        processor.release(10)
        await batchman.shutdown()

        #expect(collector.results.count == 7)
        #expect(processor.batches.elements.map(\.jobs.count) == [2, 2, 2, 1])
        #expect(processor.batches.elements.last?.reason == .shutdown)
    }
}
