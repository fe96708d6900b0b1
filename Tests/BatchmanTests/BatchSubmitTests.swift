import Batchman
import BatchmanTesting
import Foundation
import Synchronization
import Testing

/// `submit(contentsOf:)`: the single-job contract, job by job, at one lock per run of a key.
@Suite(.timeLimit(.minutes(1)))
struct BatchSubmitTests {
    @Test func givesEveryJobOfAMixedRunExactlyOneResult() async throws {
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 3), processor: processor)
        let collector = ResultCollector<String, String>()
        let jobs = (0..<20).map { (id: "\($0 % 10)", key: $0 < 10 ? "a" : ($0 % 2 == 0 ? "b" : "c"), payload: "p\($0)") }

        batchman.submit(contentsOf: jobs, onResult: collector.callback)
        await batchman.shutdown()

        let results = collector.results.elements
        #expect(results.count == 20)
        #expect(Set(results.map { "\($0.key)/\($0.id)" }).count == 20)
        #expect(results.allSatisfy { $0.status == .completed && $0.result == $0.payload })
    }

    @Test func refusesADuplicateWithinTheRunAndKeepsTheFirst() async throws {
        let batchman = try makeBatchman(processor: TestProcessor<String, String>.echo())
        let collector = ResultCollector<String, String>()

        batchman.submit(contentsOf: [(id: "1", key: "k", payload: "first"), (id: "1", key: "k", payload: "second")], onResult: collector.callback)
        await batchman.shutdown()

        let byPayload = Dictionary(uniqueKeysWithValues: collector.results.elements.map { ($0.payload, $0) })
        #expect(byPayload["first"]?.status == .completed)
        #expect(byPayload["second"]?.errorReason == .duplicate)
    }

    @Test func blocksOnAFullKeyAndGoesOnWhenThereIsRoom() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        var config = BatcherConfig(maxBatchSize: 2)
        config.maxPending = 4
        let batchman = try makeBatchman(BatchmanConfig(defaults: config), processor: processor)
        let collector = ResultCollector<String, String>()
        let submitted = RecordLog<Void>()

        Thread.detachNewThread {
            batchman.submit(contentsOf: (0..<10).map { (id: "\($0)", key: "k", payload: "\($0)") }, onResult: collector.callback)
            submitted.append(())
        }
        await processor.batches.wait(forCount: 1)
        #expect(submitted.elements.isEmpty, "ten jobs do not fit in maxPending 4: the caller waits")
        processor.release(5)
        await submitted.wait(forCount: 1)
        await batchman.shutdown()

        #expect(collector.results.elements.count == 10)
        #expect(collector.results.elements.allSatisfy { $0.status == .completed })
    }
}
