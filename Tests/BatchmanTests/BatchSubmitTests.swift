import Batchman
import BatchmanTesting
import Foundation
import Synchronization
import Testing

/// `submit(contentsOf:)`: the single-job contract, job by job, at one lock per run of a key.
// The limit guards against a hang; under .ci/run the test pool shared with the heavy tests has
// stalled for 80 s (every library test waited, and those behind a one-minute limit failed).
@Suite(.timeLimit(.minutes(5)))
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

/// `ResultSink`: results a batch at a time.
// The limit guards against a hang; under .ci/run the test pool shared with the heavy tests has
// stalled for 80 s (every library test waited, and those behind a one-minute limit failed).
@Suite(.timeLimit(.minutes(5)))
struct ResultSinkTests {
    final class Sink: ResultSink {
        let calls: RecordLog<[JobResult<String, String>]>
        init(calls: RecordLog<[JobResult<String, String>]> = RecordLog()) { self.calls = calls }
        func receive(_ results: [JobResult<String, String>]) { calls.append(results) }
    }

    @Test func receivesEveryResultOfABatchInOneCall() async throws {
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 3), processor: TestProcessor<String, String>.echo())
        let sink = Sink()

        batchman.submit(contentsOf: (1...6).map { (id: "\($0)", key: "k", payload: "p\($0)") }, to: sink)
        await batchman.shutdown()

        let calls = sink.calls.elements
        #expect(calls.map(\.count) == [3, 3], "one call per batch of three")
        #expect(calls.flatMap { $0 }.map(\.id).sorted() == ["1", "2", "3", "4", "5", "6"])
        #expect(calls.flatMap { $0 }.allSatisfy { $0.status == .completed && $0.result == $0.payload })
    }

    @Test func getsARefusedJobAloneBeforeSubmitReturns() async throws {
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 2), processor: TestProcessor<String, String>.echo())
        let sink = Sink()

        batchman.submit(id: "1", key: "k", payload: "first", to: sink)
        batchman.submit(id: "1", key: "k", payload: "again", to: sink)
        #expect(sink.calls.elements.map { $0.map(\.errorReason) } == [[.duplicate]])
        await batchman.shutdown()

        #expect(sink.calls.elements.last?.map(\.payload) == ["first"])
    }

    @Test func keepsASinkAliveUntilItsResultsAreHandedOver() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 1), processor: processor)
        let calls = RecordLog<[JobResult<String, String>]>()
        weak var released: Sink?
        do {
            let sink = Sink(calls: calls)
            released = sink
            batchman.submit(id: "1", key: "k", payload: "p", to: sink)
        }
        #expect(released != nil, "the batcher holds the sink while its job waits; the caller let go")
        processor.release(1)
        await calls.wait(forCount: 1)
        await batchman.shutdown()
        #expect(calls.elements.map { $0.map(\.id) } == [["1"]])
    }
}
