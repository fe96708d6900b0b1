import Batchman
import BatchmanTesting
import Foundation
import Synchronization
import Testing

/// A submitter's tag: carried to the result untouched, and its scope keeps ids apart.
// The limit guards against a hang; under .ci/run the test pool shared with the heavy tests has
// stalled for 80 s (every library test waited, and those behind a one-minute limit failed).
@Suite(.timeLimit(.minutes(5)))
struct JobTagTests {
    final class Sink: ResultSink {
        let results = RecordLog<JobResult<String, String>>()
        func receive(_ results: [JobResult<String, String>]) { for result in results { self.results.append(result) } }
    }

    @Test func theSameIdInTwoScopesIsTwoJobsAndEachResultCarriesItsTag() async throws {
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 3), processor: processor)
        let sink = Sink()
        let jobs = [
            Job(id: "1", key: "k", payload: "from scope 1", tag: JobTag(scope: 1, value: 11)),
            Job(id: "1", key: "k", payload: "from scope 2", tag: JobTag(scope: 2, value: 22)),
            Job(id: "1", key: "k", payload: "scope 1 again", tag: JobTag(scope: 1, value: 33)),
        ]

        batchman.submit(contentsOf: jobs, to: sink)
        await batchman.shutdown()

        let byValue = Dictionary(uniqueKeysWithValues: sink.results.elements.map { ($0.tag.value, $0) })
        #expect(byValue[11]?.status == .completed)
        #expect(byValue[11]?.result == "from scope 1")
        #expect(byValue[22]?.status == .completed, "another scope: not a duplicate")
        #expect(byValue[22]?.result == "from scope 2")
        #expect(byValue[33]?.errorReason == .duplicate, "the same scope: a duplicate")
        #expect(byValue[22]?.tag == JobTag(scope: 2, value: 22))
    }

    @Test func outcomesOutOfOrderStillReachEachScopesJob() async throws {
        // A processor that answers in reverse order, by key and id: jobs that share both are
        // answered in batch order, one outcome each.
        let processor = TestProcessor<String, String> { batch in
            batch.jobs.reversed().map { .completed($0, "done") }
        }
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 2), processor: processor)
        let sink = Sink()
        batchman.submit(contentsOf: [Job(id: "1", key: "k", payload: "a", tag: JobTag(scope: 1)),
                                     Job(id: "1", key: "k", payload: "b", tag: JobTag(scope: 2))], to: sink)
        await batchman.shutdown()

        #expect(sink.results.elements.count == 2)
        #expect(sink.results.elements.allSatisfy { $0.status == .completed })
    }

    @Test func getJobLooksInTheScopeItIsGiven() async throws {
        let batchman = try makeBatchman(BatchmanConfig(maxBatchSize: 10), processor: TestProcessor<String, String>.echo())
        let sink = Sink()
        batchman.submit(contentsOf: [Job(id: "1", key: "k", payload: "a", tag: JobTag(scope: 7))], to: sink)

        #expect(batchman.getJob(key: "k", id: "1", scope: 7)?.payload == "a")
        #expect(batchman.getJob(key: "k", id: "1") == nil)
        await batchman.shutdown()
    }
}
