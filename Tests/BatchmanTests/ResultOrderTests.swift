import Batchman
import BatchmanTesting
import Dispatch
import Foundation
import Synchronization
import Testing

/// A key's results reach their handlers one batch at a time, in the order its batches settled
/// (with `maxInFlight` 1, batch order), though the next batch starts before they are handed
/// over: what a consumer that must keep a key's order (the host's NATS results) relies on.
// The limit guards against a hang; under .ci/run the test pool shared with the heavy tests has
// stalled for 80 s (every library test waited, and those behind a one-minute limit failed).
@Suite(.timeLimit(.minutes(5)))
struct ResultOrderTests {
    /// Holds every batch until the test completes it, from a thread of its choosing.
    final class Held: QueueingBatchProcessor, Sendable {
        typealias Payload = String
        typealias Output = String
        typealias Completion = @Sendable (Result<[JobOutcome<String>], any Error>) -> Void

        let batches = RecordLog<(batch: Batch<String>, completion: Completion)>()

        func enqueue(_ batch: Batch<String>, completion: @escaping Completion) {
            batches.append((batch, completion))
        }

        /// Completes held batch `index` on a thread of its own, in order; says when the
        /// completion returned.
        func complete(_ index: Int, returned: RecordLog<Int>) {
            let (batch, completion) = batches.elements[index]
            Thread.detachNewThread {
                _ = batch.beginCall()
                completion(.success(batch.jobs.map { .completed($0, $0.payload) }))
                returned.append(index)
            }
        }
    }

    /// Records each call, and blocks in the first until released.
    final class GatedSink: ResultSink, Sendable {
        let calls = RecordLog<[String]>()
        let entered = RecordLog<Void>()
        let gate = DispatchSemaphore(value: 0)

        func receive(_ results: [JobResult<String, String>]) {
            entered.append(())
            if entered.count == 1 { gate.wait() }
            calls.append(results.map(\.id))
        }
    }

    @Test func aBatchSettledWhileTheOneBeforeIsStillHandedOverWaitsForIt() async throws {
        let processor = Held()
        let batchman = try TestBatchman(config: BatchmanConfig(defaults: BatcherConfig(maxBatchSize: 1)), clock: ManualClock(),
                                        logger: .silent) { _ in processor }
        let sink = GatedSink()
        batchman.submit(contentsOf: [Job(id: "1", key: "k", payload: "a"), Job(id: "2", key: "k", payload: "b")], to: sink)
        await processor.batches.wait(forCount: 1)
        let returned = RecordLog<Int>()

        processor.complete(0, returned: returned)  // starts batch 2, then hands batch 1's result over: blocks in the sink
        await sink.entered.wait(forCount: 1)
        await processor.batches.wait(forCount: 2)
        processor.complete(1, returned: returned)
        await returned.wait(forCount: 1)

        #expect(returned.elements == [1], "batch 2's completion returns at once: it does not wait for the slow sink")
        #expect(sink.calls.elements.isEmpty, "and its result waits for batch 1's")
        sink.gate.signal()
        #expect(await sink.calls.wait(forCount: 2) == [["1"], ["2"]])
        await batchman.shutdown()
    }
}
